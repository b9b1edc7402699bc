"""The writer talks to the server in a few multi-row statements, never one statement per row.

Not a timing test: it counts the statements the server received on the writer's own connection
(MariaDB's session counter `Questions`). A driver or dialect change that silently falls back to
one INSERT per row (PyMySQL's executemany only batches statements it recognises) turns the
10,000 rows below into 10,000+ statements and fails here, long before anyone notices it in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, Engine, text

from syncd.bitrix.hlblock import ApplyCounts, ApplyOptions, Blocks, apply_export
from syncd.bitrix.schema import block_specs
from syncd.bitrix.users import load_linker
from syncd.config import BitrixConfig, DatabaseConfig
from syncd.contract.records import Counterparty, Document, Header, Payment
from syncd.plumbing.db import make_engine
from tests.exports import guid

MSK = ZoneInfo("Europe/Moscow")
COUNTERPARTIES = 1_000
PAYMENTS_PER = 7
DOCUMENTS_PER = 2
ROWS = COUNTERPARTIES * (1 + PAYMENTS_PER + DOCUMENTS_PER)  # 10,000
MAX_STATEMENTS = 20


BITRIX = BitrixConfig(timezone=MSK)


@pytest.fixture
def engine(bitrix_db_url: str) -> Iterator[Engine]:
    """The three blocks and syncd's tables as `syncd migrate` makes them, on the suite's MariaDB."""
    eng = make_engine(DatabaseConfig(url=bitrix_db_url))
    yield eng
    eng.dispose()


def _export(version: int) -> list[Counterparty]:
    """1,000 counterparties; every value depends on `version`, so version 2 changes every row."""
    cps = []
    for n in range(COUNTERPARTIES):
        cps.append(Counterparty(
            id=guid(n),
            debt=Decimal(f"{1000 + n}.{version:02d}"),
            inn=f"77{n:08d}",
            name=f"ООО «Контрагент {n}»",
            payments=[
                Payment(id=guid(n * 100 + i, 1), date=datetime(2026, 11, 1 + i, 12, tzinfo=MSK),
                        sum=Decimal(f"{100 + i}.{version:02d}"), number=f"00УТ-{n:05d}{i}", kind="bank")
                for i in range(PAYMENTS_PER)
            ],
            documents=[
                Document(id=guid(n * 100 + i, 2), date=date(2026, 10, 1), outstanding=Decimal(f"250.{version:02d}"),
                         kind="invoice", number=f"СЧ-{n}-{i}", due_date=date(2026, 10, 31), amount=Decimal("500.00"))
                for i in range(DOCUMENTS_PER)
            ],
        ))
    return cps


def _questions(conn: Connection) -> int:
    row = conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Questions'").one()
    return int(row[1])


def _apply_counting(engine: Engine, version: int) -> tuple[int, ApplyCounts]:
    """Apply one export in one transaction; the statements the server received while the writer ran."""
    blocks = Blocks.from_specs(block_specs(BITRIX.blocks))
    header = Header(
        export_id=guid(version, 3),
        generated_at=datetime(2026, 11, 25, 10, tzinfo=MSK) + timedelta(hours=version),
        payments_from=date(2026, 8, 1),
    )
    options = ApplyOptions(bitrix_tz=BITRIX.timezone)
    with engine.begin() as conn:
        linker = load_linker(conn, BITRIX.link_by)
        # The SHOW itself is a statement: two in a row measure what the counting adds.
        overhead = -_questions(conn) + _questions(conn)
        before = _questions(conn)
        counts = apply_export(conn, blocks, header, _export(version), linker, options)
        sent = _questions(conn) - before - overhead
    return sent, counts


def _payment_sums(engine: Engine) -> set[float]:
    with engine.connect() as conn:
        return {round(v, 2) for v in conn.execute(text("SELECT UF_SUM FROM contractor_payments")).scalars()}


def test_first_insert_of_10000_rows_takes_a_few_statements(engine: Engine) -> None:
    sent, counts = _apply_counting(engine, 1)

    assert (counts.balance.inserted, counts.payments.inserted, counts.documents.inserted) == (
        COUNTERPARTIES, COUNTERPARTIES * PAYMENTS_PER, COUNTERPARTIES * DOCUMENTS_PER)
    assert sum(c.inserted for c in counts.by_role().values()) == ROWS
    assert 0 < sent <= MAX_STATEMENTS, f"{sent} statements for {ROWS} rows"
    assert _payment_sums(engine) == {100 + i + 0.01 for i in range(PAYMENTS_PER)}


def test_update_of_all_10000_rows_takes_a_few_statements(engine: Engine) -> None:
    _apply_counting(engine, 1)

    sent, counts = _apply_counting(engine, 2)

    assert (counts.balance.updated, counts.payments.updated, counts.documents.updated) == (
        COUNTERPARTIES, COUNTERPARTIES * PAYMENTS_PER, COUNTERPARTIES * DOCUMENTS_PER)
    assert sum(c.written() for c in counts.by_role().values()) == ROWS
    assert 0 < sent <= MAX_STATEMENTS, f"{sent} statements for {ROWS} rows"
    # The update really reached the rows (not only the counters).
    assert _payment_sums(engine) == {100 + i + 0.02 for i in range(PAYMENTS_PER)}
