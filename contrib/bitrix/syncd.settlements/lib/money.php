<?php

declare(strict_types=1);

namespace Syncd\Settlements;

use Bitrix\Main\Loader;

/** Money as the site's currency module formats it ("125 000,00 ₽"), in the row's currency. */
final class Money
{
    private const SIGNS = ['RUB' => '₽', 'USD' => '$', 'EUR' => '€', 'KZT' => '₸', 'BYN' => 'Br', 'UAH' => '₴'];

    /** HTML, for templates: CurrencyFormat() of the currency module when it is installed. */
    public static function html(float $sum, string $currency): string
    {
        if (Loader::includeModule('currency') && function_exists('CurrencyFormat')) {
            return (string)CurrencyFormat($sum, $currency);
        }
        return htmlspecialchars(self::fallback($sum, $currency), ENT_QUOTES, 'UTF-8');
    }

    /** Plain text, for messages (the checkout shows them as text). */
    public static function text(float $sum, string $currency): string
    {
        $html = self::html($sum, $currency);
        return trim(html_entity_decode(strip_tags($html), ENT_QUOTES | ENT_HTML5, 'UTF-8'));
    }

    private static function fallback(float $sum, string $currency): string
    {
        return number_format($sum, 2, ',', "\u{00A0}") . "\u{00A0}" . (self::SIGNS[$currency] ?? $currency);
    }
}
