<?php
namespace Bitrix\Main\DB;

use Bitrix\Main\Type;

/** [R main/lib/db/connection.php]: errors of a query throw SqlQueryException. */
class SqlQueryException extends \Bitrix\Main\SystemException {}

/** [R main/lib/db/mysqlisqlhelper.php]: forSql() escapes only (the caller adds quotes); quote() for names. */
class SqlHelper
{
    public function __construct(protected \mysqli $link) {}

    public function forSql($value, $maxLength = 0)
    {
        $value = (string)$value;
        return $this->link->real_escape_string($maxLength > 0 ? mb_substr($value, 0, $maxLength) : $value);
    }

    public function quote($identifier)
    {
        return '`' . str_replace('`', '``', (string)$identifier) . '`';
    }
}

/**
 * [R main/lib/db/result.php, mysqlcommonsqlhelper.php getConverter]: fetch() gives DATE as Type\Date,
 * DATETIME/TIMESTAMP as Type\DateTime (NULL or a zero date as null) and DOUBLE as the raw string.
 */
class Result
{
    /** @var array<string, string> column => 'date'|'datetime' */
    protected array $converters = [];

    public function __construct(protected \mysqli_result|bool $result)
    {
        if ($result instanceof \mysqli_result) {
            foreach ($result->fetch_fields() as $f) {
                if ($f->type === MYSQLI_TYPE_DATE || $f->type === MYSQLI_TYPE_NEWDATE) {
                    $this->converters[$f->name] = 'date';
                } elseif ($f->type === MYSQLI_TYPE_DATETIME || $f->type === MYSQLI_TYPE_TIMESTAMP) {
                    $this->converters[$f->name] = 'datetime';
                }
            }
        }
    }

    public function fetch()
    {
        if (!$this->result instanceof \mysqli_result) {
            return false;
        }
        $row = $this->result->fetch_assoc();
        if (!is_array($row)) {
            return false;
        }
        foreach ($this->converters as $name => $kind) {
            $v = $row[$name];
            if ($v === null || str_starts_with($v, '0000-00-00')) {
                $row[$name] = null;
            } else {
                $row[$name] = $kind === 'date' ? new Type\Date($v, 'Y-m-d') : new Type\DateTime($v, 'Y-m-d H:i:s');
            }
        }
        return $row;
    }

    public function fetchAll()
    {
        $rows = [];
        while ($row = $this->fetch()) {
            $rows[] = $row;
        }
        return $rows;
    }
}

/** [R main/lib/db/connection.php]: query($sql[, $limit]) -> Result; queryScalar($sql) -> first column or null. */
class Connection
{
    protected \mysqli $link;

    public function __construct(string $host, int $port, string $user, string $password, string $database)
    {
        mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
        $this->link = new \mysqli($host, $user, $password, $database, $port);
        $this->link->set_charset('utf8mb4');
    }

    public function query($sql, $limit = null)
    {
        if ($limit !== null) {
            $sql .= ' LIMIT ' . (int)$limit;
        }
        try {
            return new Result($this->link->query($sql));
        } catch (\mysqli_sql_exception $e) {
            throw new SqlQueryException('Mysql query error: ' . $e->getMessage() . ' (' . $sql . ')');
        }
    }

    public function queryScalar($sql, ?array $binds = null)
    {
        $row = $this->query($sql)->fetch();
        return is_array($row) ? reset($row) : null;
    }

    public function queryExecute($sql, ?array $binds = null)
    {
        $this->query($sql);
    }

    /** Not the kernel's behaviour (it reconnects on the next query): here a closed link stays closed, so a
     *  test can make every later query fail like a database gone away. */
    public function disconnect()
    {
        $this->link->close();
    }

    public function getSqlHelper()
    {
        return new SqlHelper($this->link);
    }
}
