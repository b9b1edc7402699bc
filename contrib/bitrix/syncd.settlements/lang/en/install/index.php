<?php
$MESS['SYNCD_SETTLEMENTS_MODULE_NAME'] = 'syncd: settlements';
$MESS['SYNCD_SETTLEMENTS_MODULE_DESCRIPTION'] = 'The buyer\'s balance in the personal account, and no new orders while a debt is overdue (data from 1C via syncd).';
