<?php

declare(strict_types=1);

namespace Syncd\Settlements;

use Bitrix\Main\Application;
use Bitrix\Main\DB\Connection;
use Bitrix\Main\DB\SqlQueryException;

/**
 * The three HL-blocks syncd writes, read with plain SQL through the site's connection.
 *
 * Each block's data table is found in b_hlblock_entity by the block's NAME (the names are module
 * options, as in syncd's config); no table name is written into this code. Rows belong to a site
 * user through UF_BITRIX_USER_ID, which syncd fills on every row.
 * Values come back as the kernel's DB\Result gives them: DATE/DATETIME as Type\Date/DateTime objects,
 * DOUBLE as numeric strings; Values turns them into PHP types.
 */
final class Blocks
{
    /** @var array<string, ?string> role => data table (null: the block does not exist) */
    private array $tables = [];

    /** @param array{balance: string, payments: string, documents: string} $names */
    public function __construct(private Connection $db, private array $names)
    {
    }

    public static function fromOptions(): self
    {
        return new self(Application::getConnection(), Options::blockNames());
    }

    /** The data table of a block (balance, payments, documents), or null when syncd has not created it. */
    public function table(string $role): ?string
    {
        if (!array_key_exists($role, $this->tables)) {
            $this->tables[$role] = $this->lookup($this->names[$role]);
        }
        return $this->tables[$role];
    }

    /** True when all three blocks exist. */
    public function ready(): bool
    {
        return $this->table('balance') !== null && $this->table('payments') !== null
            && $this->table('documents') !== null;
    }

    /** The user's counterparties (balance rows), by name. @return list<array<string, mixed>> */
    public function balances(int $userId): array
    {
        return $this->rows('balance', 'UF_BITRIX_USER_ID = ' . $userId, 'UF_NAME, ID');
    }

    /** What the cached page depends on: the newest as-of time and the row count of the user's balance rows. */
    public function stamp(int $userId): ?string
    {
        $table = $this->table('balance');
        if ($table === null) {
            return null;
        }
        $row = $this->db->query(
            'SELECT MAX(UF_UPDATED_AT) AS AS_OF, COUNT(*) AS CNT FROM ' . $this->quote($table)
            . ' WHERE UF_BITRIX_USER_ID = ' . $userId
        )->fetch();
        $asOf = Values::date($row['AS_OF'] ?? null);
        return ($asOf ? $asOf->format('Y-m-d H:i:s') : '-') . '/' . (int)($row['CNT'] ?? 0);
    }

    /** Open documents of one counterparty, by due date (none last), then date. @return list<array<string, mixed>> */
    public function documents(int $userId, string $counterparty): array
    {
        return $this->rows(
            'documents',
            $this->owned($userId, $counterparty),
            'UF_DUE_DATE IS NULL, UF_DUE_DATE, UF_DATE, ID'
        );
    }

    /** One page of a counterparty's payments, newest first. @return list<array<string, mixed>> */
    public function payments(int $userId, string $counterparty, int $offset, int $limit): array
    {
        return $this->rows(
            'payments',
            $this->owned($userId, $counterparty),
            'UF_DATE DESC, ID DESC',
            max(1, $limit),
            max(0, $offset)
        );
    }

    public function paymentCount(int $userId, string $counterparty): int
    {
        $table = $this->table('payments');
        if ($table === null) {
            return 0;
        }
        return (int)$this->db->queryScalar(
            'SELECT COUNT(*) FROM ' . $this->quote($table) . ' WHERE ' . $this->owned($userId, $counterparty)
        );
    }

    private function lookup(string $name): ?string
    {
        if (!preg_match('/^[A-Z][A-Za-z0-9]*$/', $name)) {
            return null;
        }
        try {
            $table = $this->db->queryScalar(
                "SELECT TABLE_NAME FROM b_hlblock_entity WHERE NAME = '" . $this->db->getSqlHelper()->forSql($name) . "'"
            );
        } catch (SqlQueryException) {
            return null; // no highloadblock tables at all
        }
        if (!is_string($table) || !preg_match('/^[a-z0-9_]+$/', $table)) {
            return null;
        }
        try {
            $this->db->query('SELECT 1 FROM ' . $this->quote($table) . ' LIMIT 1');
        } catch (SqlQueryException) {
            return null; // the block is registered but its data table is gone
        }
        return $table;
    }

    private function owned(int $userId, string $counterparty): string
    {
        return 'UF_BITRIX_USER_ID = ' . $userId . " AND UF_CONTRACTOR_XML_ID = '"
            . $this->db->getSqlHelper()->forSql($counterparty) . "'";
    }

    /** @return list<array<string, mixed>> */
    private function rows(string $role, string $where, string $order, int $limit = 0, int $offset = 0): array
    {
        $table = $this->table($role);
        if ($table === null) {
            return [];
        }
        $sql = 'SELECT * FROM ' . $this->quote($table) . ' WHERE ' . $where . ' ORDER BY ' . $order;
        if ($limit > 0) {
            $sql .= ' LIMIT ' . $offset . ', ' . $limit;
        }
        $result = $this->db->query($sql);
        $rows = [];
        while ($row = $result->fetch()) {
            $rows[] = $row;
        }
        return $rows;
    }

    private function quote(string $table): string
    {
        return $this->db->getSqlHelper()->quote($table);
    }
}
