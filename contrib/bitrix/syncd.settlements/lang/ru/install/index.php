<?php
$MESS['SYNCD_SETTLEMENTS_MODULE_NAME'] = 'syncd: взаиморасчёты';
$MESS['SYNCD_SETTLEMENTS_MODULE_DESCRIPTION'] = 'Баланс покупателя в личном кабинете и запрет заказа при просроченной задолженности (данные из 1С через syncd).';
