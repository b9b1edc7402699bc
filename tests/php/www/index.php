<?php
/**
 * A personal-account test page: the stand-ins, a signed-in user (?user=<id>, 0 = guest) and the
 * component as the README shows it. Served by `php -S` in tests/test_bitrix_module.py.
 */

declare(strict_types=1);

require dirname(__DIR__) . '/bootstrap.php';

global $USER, $APPLICATION;
$USER = new CUser((int)($_GET['user'] ?? 0));
$APPLICATION = new CMain($_SERVER['DOCUMENT_ROOT'] . '/local/components');

ob_start();
$APPLICATION->IncludeComponent('syncd:settlements', '', ['PAGE_SIZE' => 2, 'CACHE_TIME' => 3600]);
$body = (string)ob_get_clean();
header('X-Standin-Cache: ' . CBitrixComponent::$lastCache);
?><!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Взаиморасчёты</title>
<style>body { margin: 0; padding: 12px; }</style>
</head>
<body>
<h1 style="font: 600 22px system-ui, sans-serif">Мой баланс</h1>
<?= $body ?>
<script>document.body.dataset.scrollWidth = String(document.documentElement.scrollWidth);</script>
</body>
</html>
