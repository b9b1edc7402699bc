<?php

declare(strict_types=1);

namespace Syncd\Settlements;

use Bitrix\Main\Config\Option;

/**
 * The module's options (Settings -> Module settings -> syncd: settlements), with their defaults.
 * Option::get() returns the stored string, so every value is cast here.
 */
final class Options
{
    public const MODULE_ID = 'syncd.settlements';

    public const DEFAULTS = [
        // HL-block names as syncd's [bitrix.blocks] (config.example.toml); tables are looked up by name.
        'balance_block' => 'ContractorBalance',
        'payments_block' => 'ContractorPayments',
        'documents_block' => 'ContractorDocuments',
        // Refuse a new order while the buyer has overdue debt.
        'block_overdue' => 'Y',
        // Debt + this order's price over the credit limit: refuse | warn | none.
        'over_limit' => 'warn',
        // Comma-separated user group ids whose members place orders unchecked (1 = administrators).
        'exempt_groups' => '1',
        // Data older than this many hours is stale: the page says so, and the order rule follows on_stale.
        'stale_hours' => '26',
        // Stale data at checkout: allow (do not block, log it) | check (apply the rules anyway).
        'on_stale' => 'allow',
    ];

    public static function get(string $name): string
    {
        return (string)Option::get(self::MODULE_ID, $name, self::DEFAULTS[$name]);
    }

    public static function flag(string $name): bool
    {
        return self::get($name) === 'Y';
    }

    /** @return list<int> */
    public static function groups(string $name): array
    {
        $ids = array_map('intval', preg_split('/[\s,;]+/', self::get($name), -1, PREG_SPLIT_NO_EMPTY) ?: []);
        return array_values(array_filter($ids, static fn(int $id): bool => $id > 0));
    }

    public static function staleSeconds(): int
    {
        return max(1, (int)round((float)self::get('stale_hours') * 3600));
    }

    /** @return array{balance: string, payments: string, documents: string} */
    public static function blockNames(): array
    {
        return [
            'balance' => self::get('balance_block'),
            'payments' => self::get('payments_block'),
            'documents' => self::get('documents_block'),
        ];
    }
}
