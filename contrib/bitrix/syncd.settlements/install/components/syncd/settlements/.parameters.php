<?php
defined('B_PROLOG_INCLUDED') && B_PROLOG_INCLUDED === true || die();

$arComponentParameters = [
    'PARAMETERS' => [
        'PAGE_SIZE' => ['PARENT' => 'BASE', 'NAME' => GetMessage('SYNCD_SETTLEMENTS_PAGE_SIZE'), 'TYPE' => 'STRING', 'DEFAULT' => '20'],
        'CACHE_TIME' => ['DEFAULT' => 3600],
    ],
];
