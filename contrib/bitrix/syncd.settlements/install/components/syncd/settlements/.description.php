<?php
defined('B_PROLOG_INCLUDED') && B_PROLOG_INCLUDED === true || die();

$arComponentDescription = [
    'NAME' => GetMessage('SYNCD_SETTLEMENTS_COMPONENT_NAME'),
    'DESCRIPTION' => GetMessage('SYNCD_SETTLEMENTS_COMPONENT_DESCRIPTION'),
    'PATH' => ['ID' => 'syncd', 'NAME' => 'syncd'],
];
