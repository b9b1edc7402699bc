<?php
$MESS['SYNCD_SETTLEMENTS_COMPONENT_NAME'] = 'Взаиморасчёты (syncd)';
$MESS['SYNCD_SETTLEMENTS_COMPONENT_DESCRIPTION'] = 'Баланс, открытые документы и оплаты покупателя из 1С';
