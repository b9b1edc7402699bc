<?php
namespace Bitrix\Main\Localization;

/**
 * [B24 main/lib/localization/loc.php]: a final class; the lang file of a PHP file is found by walking
 * up to the nearest folder with lang/, then lang/<language>/<path relative to that folder>;
 * getMessage() returns null for an unknown code and applies $replace with strtr.
 */
final class Loc
{
    /** @var array<string, string> */
    private static array $messages = [];

    public static function loadMessages($file)
    {
        $file = str_replace('\\', '/', (string)realpath($file));
        $dir = dirname($file);
        while ($dir !== '/' && $dir !== '.' && !is_dir($dir . '/lang')) {
            $dir = dirname($dir);
        }
        $lang = defined('LANGUAGE_ID') ? LANGUAGE_ID : 'en';
        $langFile = $dir . '/lang/' . $lang . '/' . substr($file, strlen($dir) + 1);
        if (is_file($langFile)) {
            $MESS = [];
            include $langFile;
            self::$messages = $MESS + self::$messages;
        }
    }

    public static function getMessage($code, $replace = null, $language = null)
    {
        $message = self::$messages[$code] ?? null;
        return ($message !== null && is_array($replace)) ? strtr($message, $replace) : $message;
    }
}
