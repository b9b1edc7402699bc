<?php
$MESS['SYNCD_SETTLEMENTS_OPT_TAB'] = 'Настройки';
$MESS['SYNCD_SETTLEMENTS_OPT_SAVE'] = 'Сохранить';
$MESS['SYNCD_SETTLEMENTS_OPT_BALANCE_BLOCK'] = 'HL-блок баланса (как [bitrix.blocks] в syncd)';
$MESS['SYNCD_SETTLEMENTS_OPT_PAYMENTS_BLOCK'] = 'HL-блок оплат';
$MESS['SYNCD_SETTLEMENTS_OPT_DOCUMENTS_BLOCK'] = 'HL-блок открытых документов';
$MESS['SYNCD_SETTLEMENTS_OPT_BLOCK_OVERDUE'] = 'Запрещать новый заказ при просроченной задолженности';
$MESS['SYNCD_SETTLEMENTS_OPT_OVER_LIMIT'] = 'Задолженность и заказ больше кредитного лимита';
$MESS['SYNCD_SETTLEMENTS_OPT_OVER_LIMIT_REFUSE'] = 'запретить заказ';
$MESS['SYNCD_SETTLEMENTS_OPT_OVER_LIMIT_WARN'] = 'разрешить и записать в журнал событий';
$MESS['SYNCD_SETTLEMENTS_OPT_OVER_LIMIT_NONE'] = 'ничего не делать';
$MESS['SYNCD_SETTLEMENTS_OPT_EXEMPT_GROUPS'] = 'Группы без проверки (ID через запятую)';
$MESS['SYNCD_SETTLEMENTS_OPT_STALE_HOURS'] = 'Данные устарели через, часов';
$MESS['SYNCD_SETTLEMENTS_OPT_ON_STALE'] = 'Если данные устарели';
$MESS['SYNCD_SETTLEMENTS_OPT_ON_STALE_ALLOW'] = 'не запрещать заказ, записать в журнал';
$MESS['SYNCD_SETTLEMENTS_OPT_ON_STALE_CHECK'] = 'проверять как обычно';
