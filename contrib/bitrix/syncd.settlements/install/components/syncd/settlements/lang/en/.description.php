<?php
$MESS['SYNCD_SETTLEMENTS_COMPONENT_NAME'] = 'Settlements (syncd)';
$MESS['SYNCD_SETTLEMENTS_COMPONENT_DESCRIPTION'] = 'The buyer\'s balance, open documents and payments from 1C';
