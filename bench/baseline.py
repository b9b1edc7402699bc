"""The database's own speed on the same rows: LOAD DATA LOCAL INFILE and a plain PyMySQL executemany upsert.

The rows are the generator's values converted the way syncd stores them (DOUBLE money, naive
datetimes in the site's zone, the export's as-of time in UF_UPDATED_AT), written to one TSV per
table before anything is timed. Both baselines load into the empty tables `syncd migrate` makes,
so indexes and column types are the ones syncd writes to.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql

from bench.generate import GenCounterparty, Spec, iter_counterparties
from syncd.bitrix.schema import BALANCE_FIELDS, DOCUMENT_FIELDS, PAYMENT_FIELDS

TABLES = {
    "contractor_balance": [f.name for f in BALANCE_FIELDS],
    "contractor_payments": [f.name for f in PAYMENT_FIELDS],
    "contractor_documents": [f.name for f in DOCUMENT_FIELDS],
}


def _cell(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    # LOAD DATA's default escapes: backslash, tab and newline would otherwise split fields.
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _rows(cp: GenCounterparty, user: int | None, as_of: datetime) -> dict[str, list[tuple[Any, ...]]]:
    incoming = [p for p in cp.payments if p.sum > 0]
    if cp.last_payment is not None:
        lp_date, lp_sum = cp.last_payment
    elif incoming:
        newest = max(incoming, key=lambda p: p.date)
        lp_date, lp_sum = newest.date.date(), newest.sum
    else:
        lp_date, lp_sum = None, None
    return {
        "contractor_balance": [(
            cp.id, user, cp.debt, cp.overdue, cp.credit_limit, lp_date, lp_sum, as_of, cp.payable,
            cp.currency, cp.inn, cp.kpp, cp.name,
        )],
        "contractor_payments": [
            (p.id, cp.id, user, p.date, p.sum, cp.currency, p.number, p.kind or None, p.purpose, as_of)
            for p in cp.payments
        ],
        "contractor_documents": [
            (d.id, cp.id, user, d.kind or None, d.number, cp.currency, d.date, d.due_date, d.amount, d.outstanding,
             as_of)
            for d in cp.documents
        ],
    }


def linked_user(index: int) -> int | None:
    """The site user of counterparty number `index`: every fifth one has an account (b_user.ID = index + 1)."""
    return index + 1 if index % 5 == 0 else None


def write_tsv(spec: Spec, out_dir: Path) -> tuple[dict[str, Path], dict[str, int]]:
    """One TSV per table with exactly the rows syncd stores for this export (not timed).

    Also returns the linked counterparties (GUID → user id) for the bench to create those users.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {t: out_dir / f"{t}.tsv" for t in TABLES}
    files = {t: p.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) for t, p in paths.items()}
    linked: dict[str, int] = {}
    try:
        for cp in iter_counterparties(spec):
            user = linked_user(cp.index)
            if user is not None:
                linked[cp.id] = user
            for table, rows in _rows(cp, user, spec.generated_at).items():
                f = files[table]
                for row in rows:
                    f.write("\t".join(_cell(v) for v in row) + "\n")
    finally:
        for f in files.values():
            f.close()
    return paths, linked


def _connect(db: dict[str, Any], *, local_infile: bool = False) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(**db, charset="utf8mb4", autocommit=False, local_infile=local_infile)


def truncate(db: dict[str, Any]) -> None:
    conn = _connect(db)
    try:
        with conn.cursor() as cur:
            for table in TABLES:
                cur.execute(f"TRUNCATE TABLE `{table}`")
        conn.commit()
    finally:
        conn.close()


def load_data(db: dict[str, Any], tsv: dict[str, Path]) -> float:
    """LOAD DATA LOCAL INFILE of the three TSVs in one transaction; seconds."""
    conn = _connect(db, local_infile=True)
    try:
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            for table, cols in TABLES.items():
                cur.execute(
                    f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table}` CHARACTER SET utf8mb4 "
                    f"FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' ({', '.join(cols)})",
                    (str(tsv[table]),),
                )
        conn.commit()
        return time.perf_counter() - t0
    finally:
        conn.close()


def _read_tsv(path: Path, size: int = 5000) -> Iterator[list[tuple[str | None, ...]]]:
    batch: list[tuple[str | None, ...]] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            batch.append(tuple(
                None if v == "\\N" else v.replace("\\t", "\t").replace("\\n", "\n").replace("\\\\", "\\")
                for v in line.rstrip("\n").split("\t")
            ))
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def executemany_upsert(db: dict[str, Any], tsv: dict[str, Path]) -> float:
    """INSERT … ON DUPLICATE KEY UPDATE c = VALUES(c) through cursor.executemany, 5,000 rows a call.

    Only the executemany calls and the commit are timed: reading the TSV back is the baseline's
    stand-in for parsing, which syncd's figure includes and this one deliberately does not.
    """
    conn = _connect(db)
    spent = 0.0
    try:
        with conn.cursor() as cur:
            for table, cols in TABLES.items():
                sql = (
                    f"INSERT INTO `{table}` ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
                    f"ON DUPLICATE KEY UPDATE {', '.join(f'{c} = VALUES({c})' for c in cols)}"
                )
                for batch in _read_tsv(tsv[table]):
                    t0 = time.perf_counter()
                    cur.executemany(sql, batch)
                    spent += time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.commit()
        return spent + time.perf_counter() - t0
    finally:
        conn.close()


def count_rows(db: dict[str, Any], tables: Sequence[str] = tuple(TABLES)) -> int:
    conn = _connect(db)
    try:
        with conn.cursor() as cur:
            total = 0
            for table in tables:
                cur.execute(f"SELECT COUNT(*) FROM `{table}`")
                row = cur.fetchone()
                total += int(row[0]) if row else 0
            return total
    finally:
        conn.close()
