<?php
$MESS['SYNCD_SETTLEMENTS_LOGIN'] = 'Войдите, чтобы увидеть взаиморасчёты.';
$MESS['SYNCD_SETTLEMENTS_NO_MODULE'] = 'Модуль syncd.settlements не установлен.';
$MESS['SYNCD_SETTLEMENTS_DOC_INVOICE'] = 'Счёт';
$MESS['SYNCD_SETTLEMENTS_DOC_SHIPMENT'] = 'Реализация';
$MESS['SYNCD_SETTLEMENTS_DOC_ORDER'] = 'Заказ';
$MESS['SYNCD_SETTLEMENTS_DOC_'] = 'Документ';
$MESS['SYNCD_SETTLEMENTS_PAY_BANK'] = 'Банк';
$MESS['SYNCD_SETTLEMENTS_PAY_CASH'] = 'Наличные';
$MESS['SYNCD_SETTLEMENTS_PAY_CARD'] = 'Карта';
$MESS['SYNCD_SETTLEMENTS_PAY_REFUND'] = 'Возврат';
$MESS['SYNCD_SETTLEMENTS_PAY_OFFSET'] = 'Взаимозачёт';
$MESS['SYNCD_SETTLEMENTS_PAY_'] = 'Оплата';
