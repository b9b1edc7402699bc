<?php
/**
 * The rig for syncd.settlements: the Bitrix stand-ins, a connection to the test database, and the
 * module installed through its own installer (install/index.php DoInstall), as an admin would.
 *
 * Environment (set by tests/test_bitrix_module.py): SYNCD_PHP_DB_HOST, _PORT, _USER, _PASSWORD, _NAME
 * (a database migrated and filled by syncd), SYNCD_PHP_DB_BARE (one with the Bitrix core tables but no
 * blocks), SYNCD_PHP_DOCROOT (the site's document root), SYNCD_PHP_CACHE (the component cache folder).
 */

declare(strict_types=1);

use Bitrix\Main\Application;
use Bitrix\Main\DB\Connection;
use Bitrix\Main\Loader;
use Bitrix\Main\ModuleManager;

const B_PROLOG_INCLUDED = true;
const SITE_ID = 's1';
define('LANGUAGE_ID', getenv('SYNCD_PHP_LANG') ?: 'ru');
define('SYNCD_MODULE_DIR', dirname(__DIR__, 2) . '/contrib/bitrix/syncd.settlements');

foreach (['main', 'config', 'loc', 'type', 'db', 'sale', 'globals'] as $part) {
    require_once __DIR__ . '/standins/' . $part . '.php';
}

function syncd_test_connection(?string $database = null): Connection
{
    $env = static fn(string $name, string $default = ''): string => (string)(getenv('SYNCD_PHP_DB_' . $name) ?: $default);
    return new Connection($env('HOST', '127.0.0.1'), (int)$env('PORT', '3306'), $env('USER', 'root'),
        $env('PASSWORD'), $database ?? $env('NAME'));
}

$_SERVER['DOCUMENT_ROOT'] = getenv('SYNCD_PHP_DOCROOT') ?: sys_get_temp_dir() . '/syncd-php-docroot';
CBitrixComponent::$cacheDir = getenv('SYNCD_PHP_CACHE') ?: sys_get_temp_dir() . '/syncd-php-cache';
Application::setConnection(syncd_test_connection());

// The kernel modules the site has; the module itself lives in local/modules/syncd.settlements.
foreach (['sale', 'currency', 'highloadblock'] as $kernelModule) {
    ModuleManager::registerModule($kernelModule);
}
Loader::$folders['syncd.settlements'] = SYNCD_MODULE_DIR;
require_once SYNCD_MODULE_DIR . '/install/index.php';
(new syncd_settlements())->DoInstall();
