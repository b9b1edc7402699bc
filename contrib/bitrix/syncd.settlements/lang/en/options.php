<?php
$MESS['SYNCD_SETTLEMENTS_OPT_TAB'] = 'Settings';
$MESS['SYNCD_SETTLEMENTS_OPT_SAVE'] = 'Save';
$MESS['SYNCD_SETTLEMENTS_OPT_BALANCE_BLOCK'] = 'Balance HL-block (as syncd\'s [bitrix.blocks])';
$MESS['SYNCD_SETTLEMENTS_OPT_PAYMENTS_BLOCK'] = 'Payments HL-block';
$MESS['SYNCD_SETTLEMENTS_OPT_DOCUMENTS_BLOCK'] = 'Open documents HL-block';
$MESS['SYNCD_SETTLEMENTS_OPT_BLOCK_OVERDUE'] = 'Refuse a new order while a debt is overdue';
$MESS['SYNCD_SETTLEMENTS_OPT_OVER_LIMIT'] = 'Debt plus the order over the credit limit';
$MESS['SYNCD_SETTLEMENTS_OPT_OVER_LIMIT_REFUSE'] = 'refuse the order';
$MESS['SYNCD_SETTLEMENTS_OPT_OVER_LIMIT_WARN'] = 'allow it and write to the event log';
$MESS['SYNCD_SETTLEMENTS_OPT_OVER_LIMIT_NONE'] = 'nothing';
$MESS['SYNCD_SETTLEMENTS_OPT_EXEMPT_GROUPS'] = 'Exempt user groups (ids, comma-separated)';
$MESS['SYNCD_SETTLEMENTS_OPT_STALE_HOURS'] = 'Data is stale after, hours';
$MESS['SYNCD_SETTLEMENTS_OPT_ON_STALE'] = 'When the data is stale';
$MESS['SYNCD_SETTLEMENTS_OPT_ON_STALE_ALLOW'] = 'do not refuse orders, write to the event log';
$MESS['SYNCD_SETTLEMENTS_OPT_ON_STALE_CHECK'] = 'check as usual';
