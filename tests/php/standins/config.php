<?php
namespace Bitrix\Main\Config;

/**
 * [N main/lib/config/option.php]: get($moduleId, $name, $default = "", $siteId = false) returns the
 * stored string, else $default; module id and name are case-insensitive. The kernel keeps options in
 * b_option; the stand-in keeps them in memory (the rig sets them per test).
 */
class Option
{
    /** @var array<string, array<string, string>> */
    protected static array $values = [];

    public static function get($moduleId, $name, $default = '', $siteId = false)
    {
        return self::$values[strtolower($moduleId)][strtolower($name)] ?? $default;
    }

    public static function set($moduleId, $name, $value = '', $siteId = '')
    {
        self::$values[strtolower($moduleId)][strtolower($name)] = (string)$value;
    }

    public static function delete($moduleId, array $filter = [])
    {
        unset(self::$values[strtolower($moduleId)]);
    }
}
