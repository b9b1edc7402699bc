<?php

declare(strict_types=1);

namespace Syncd\Settlements;

/** Values read from the blocks, as PHP types. */
final class Values
{
    /**
     * A DATE/DATETIME value as an immutable PHP date in PHP's default zone (on a Bitrix site the
     * server's zone, the one syncd writes UF_UPDATED_AT in). Accepts Bitrix\Main\Type\Date/DateTime
     * (what DB\Result gives), a PHP DateTimeInterface or a 'Y-m-d[ H:i:s]' string; null for empty.
     */
    public static function date(mixed $value): ?\DateTimeImmutable
    {
        if ($value === null || $value === '' || $value === false) {
            return null;
        }
        if (is_object($value) && method_exists($value, 'format')) {
            $value = $value->format('Y-m-d H:i:s');
        }
        if (!is_string($value) || str_starts_with($value, '0000-00-00')) {
            return null;
        }
        try {
            return new \DateTimeImmutable($value);
        } catch (\Exception) {
            return null;
        }
    }

    /** A money value (DOUBLE comes back as a numeric string or null). */
    public static function money(mixed $value): float
    {
        return is_numeric($value) ? (float)$value : 0.0;
    }

    /** A nullable money value: null stays null (no credit limit set). */
    public static function optionalMoney(mixed $value): ?float
    {
        return is_numeric($value) ? (float)$value : null;
    }

    public static function currency(mixed $value): string
    {
        return is_string($value) && preg_match('/^[A-Z]{3}$/', $value) ? $value : 'RUB';
    }
}
