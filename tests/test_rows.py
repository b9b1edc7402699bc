"""The writer's rows (syncd.bitrix.rows): each block's row is spelled once, by the field table.

The SQL text of a new row (MySQL's fast path) must say exactly what the row's values say through the
per-column literals of their columns' types, and a row must write the same columns whether it is
inserted or updated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pymysql.converters import escape_string
from sqlalchemy import Engine, MetaData, create_engine, event

from syncd.bitrix.hlblock import ApplyOptions, Blocks, apply_export
from syncd.bitrix.rows import Fills, RowBuilder, site_time
from syncd.bitrix.schema import block_specs, data_table
from syncd.bitrix.sql import literal, quote_with
from syncd.bitrix.users import Linker
from syncd.config import BitrixConfig
from syncd.contract.fields import COUNTERPARTY, DOCUMENT, PAYMENT, Kind
from syncd.contract.records import Counterparty, Document, Header, LastPayment, Payment
from syncd.ledger import counterparty_state
from tests.exports import guid

MSK = ZoneInfo("Europe/Moscow")
QUOTE = quote_with(escape_string)
AWKWARD = ["O'Reilly", 'a "quoted" name', "back\\slash", "line\nbreak\r", "nul\x00\x1a", "\\'", "", "Ёлка №1", None]


def _by_literals(kind: Kind, values: tuple[Any, ...]) -> str:
    """A row's SQL text the slow way: each value through its column type's literal function."""
    return "(" + ",".join(literal(c.type, QUOTE)(v) for c, v in zip(kind.columns, values, strict=True)) + ")"


def _fills(n: int) -> Fills:
    text = AWKWARD[n % len(AWKWARD)]
    return Fills(counterparty=guid(n) if n % 2 else f"{guid(n)}'\\", user=None if n % 3 == 0 else n,
                 currency=text or "RUB", as_of=datetime(2026, 11, 25, 10, 0, n % 60),
                 last_payment_date=None if n % 2 else date(2026, 1, 1 + n % 28),
                 last_payment_sum=None if n % 2 else float(Decimal(f"-{n}.05") if n % 4 else Decimal(0)))


def _payments() -> Iterator[Payment]:
    for n, text in enumerate(AWKWARD * 2):
        yield Payment(id=guid(n), date=datetime(2026, 3, 29, 1, 30, 15, 999_999, tzinfo=UTC) + timedelta(hours=n),
                      sum=Decimal(["0.01", "-5.50", "0", "123456789012.99", "-0.00"][n % 5]), number=text,
                      kind=[None, "bank", "refund", "other'kind", text][n % 5], purpose=AWKWARD[-1 - n % len(AWKWARD)])


def _documents() -> Iterator[Document]:
    for n, text in enumerate(AWKWARD * 2):
        yield Document(id=guid(n, 2), date=date(2026, 2, 28), outstanding=Decimal(["0", "-1.10", "99.99"][n % 3]),
                       kind=[None, "invoice", text][n % 3], number=text, due_date=None if n % 2 else date(2026, 12, 31),
                       amount=None if n % 3 == 0 else Decimal(["-0.01", "0.00", "1e3"][n % 3]))


def _counterparties() -> Iterator[Counterparty]:
    for n, text in enumerate(AWKWARD * 2):
        yield Counterparty(id=guid(n, 3), debt=Decimal(["0", "10.10", "99999999.99"][n % 3]),
                           payable=Decimal("-0.00") if n % 2 else Decimal("5"), overdue_debt=Decimal("0.005"),
                           credit_limit=None if n % 2 else Decimal("-7"), inn=text, kpp=text, name=text,
                           currency=text or "USD")


def test_payment_rows_say_the_same_as_sql_text_and_as_values() -> None:
    rows = RowBuilder(PAYMENT, MSK, QUOTE, given=("date", "sum"))
    for n, p in enumerate(_payments()):
        fills = _fills(n)
        when, amount = site_time(p.date, MSK), float(p.sum)
        values = rows.values(fills)(p, when, amount)
        assert rows.sql(fills)(p, when, amount) == _by_literals(PAYMENT, values)
        assert values == (p.id, fills.counterparty, fills.user, when, amount, fills.currency, p.number, p.kind,
                          p.purpose, fills.as_of)
        assert when.tzinfo is None and when.microsecond == 0


def test_document_rows_say_the_same_as_sql_text_and_as_values() -> None:
    rows = RowBuilder(DOCUMENT, MSK, QUOTE)
    for n, d in enumerate(_documents()):
        fills = _fills(n)
        values = rows.values(fills)(d)
        assert rows.sql(fills)(d) == _by_literals(DOCUMENT, values)
        assert values == (d.id, fills.counterparty, fills.user, d.kind, d.number, fills.currency, d.date, d.due_date,
                          None if d.amount is None else float(d.amount), float(d.outstanding), fills.as_of)


def test_balance_rows_say_the_same_as_sql_text_and_as_values() -> None:
    rows = RowBuilder(COUNTERPARTY, MSK, QUOTE)
    for n, cp in enumerate(_counterparties()):
        fills = _fills(n)
        values = rows.values(fills)(cp)
        assert rows.sql(fills)(cp) == _by_literals(COUNTERPARTY, values)
        assert rows.mapping(values) == {
            "UF_CONTRACTOR_XML_ID": cp.id, "UF_BITRIX_USER_ID": fills.user, "UF_DEBT": float(cp.debt),
            "UF_OVERDUE_DEBT": float(cp.overdue_debt),
            "UF_CREDIT_LIMIT": None if cp.credit_limit is None else float(cp.credit_limit),
            "UF_LAST_PAYMENT_DATE": fills.last_payment_date, "UF_LAST_PAYMENT_SUM": fills.last_payment_sum,
            "UF_UPDATED_AT": fills.as_of, "UF_PAYABLE": float(cp.payable), "UF_CURRENCY": cp.currency,
            "UF_INN": cp.inn, "UF_KPP": cp.kpp, "UF_NAME": cp.name,
        }


def test_a_row_refuses_a_value_of_another_type() -> None:
    rows = RowBuilder(DOCUMENT, MSK, QUOTE)
    doc = next(_documents())
    doc.date = datetime(2026, 1, 1)  # a datetime is no date for a date column
    with pytest.raises(TypeError):
        rows.sql(_fills(1))(doc)
    doc.date, doc.number = date(2026, 1, 1), 5  # type: ignore[assignment]
    with pytest.raises(TypeError):
        rows.sql(_fills(1))(doc)


def test_the_builders_columns_are_the_blocks_fields() -> None:
    specs = {s.role: s for s in block_specs(BitrixConfig(timezone=MSK).blocks)}
    for kind in (COUNTERPARTY, PAYMENT, DOCUMENT):
        assert kind.block is not None
        assert RowBuilder(kind, MSK).columns == tuple(f.name for f in specs[kind.block].fields)


# ---------------------------------------------------------------------- INSERT and UPDATE write the same columns

_INSERT = re.compile(r'INSERT INTO "?(\w+)"? \(([^)]*)\)')


def _export(version: int) -> list[Counterparty]:
    """Every value depends on `version`, so version 2 changes every row the writer compares."""
    return [Counterparty(
        id=guid(n), debt=Decimal(f"{100 + n}.{version:02d}"), payable=Decimal(version), overdue_debt=Decimal(version),
        credit_limit=Decimal(version), inn=f"77{version}", kpp=f"77{version}", name=f"Name {version}",
        currency=["RUB", "USD"][version % 2], last_payment=LastPayment(date(2026, 1, version), Decimal(version)),
        payments=[Payment(id=guid(n * 10 + i, 1), date=datetime(2026, 11, version, 12, tzinfo=MSK),
                          sum=Decimal(f"{i + 1}.{version:02d}"), number=f"N{version}",
                          kind=["bank", "cash"][version % 2], purpose=f"P{version}") for i in range(3)],
        documents=[Document(id=guid(n * 10 + i, 2), date=date(2026, 10, version), outstanding=Decimal(version),
                            kind=["invoice", "order"][version % 2], number=f"D{version}", due_date=None,
                            amount=Decimal(version)) for i in range(2)],
    ) for n in range(4)]


def _written(engine: Engine, version: int) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per table, the columns of the INSERTs and of the updates (upserts by ID) one apply sent."""
    inserted: dict[str, set[str]] = {}
    updated: dict[str, set[str]] = {}

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        m = _INSERT.match(statement)
        if m is None or m.group(1) == "syncd_counterparty_state":
            return
        cols = {c.strip().strip('"`') for c in m.group(2).split(",")}
        if "ON CONFLICT" in statement or "ON DUPLICATE KEY" in statement:
            cols.discard("ID")
            assert all(c in statement[m.end():] for c in cols)  # each one is in the SET list too
            updated.setdefault(m.group(1), set()).update(cols)
        else:
            inserted.setdefault(m.group(1), set()).update(cols)

    blocks = Blocks.from_specs(block_specs(BitrixConfig(timezone=MSK).blocks))
    header = Header(export_id=guid(version, 9), generated_at=datetime(2026, 11, 25, 10, tzinfo=MSK) + timedelta(
        hours=version), mode="delta")
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.begin() as conn:
            apply_export(conn, blocks, header, _export(version), Linker(), ApplyOptions(bitrix_tz=MSK))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return inserted, updated


def test_a_row_writes_the_same_columns_inserted_as_updated() -> None:
    engine = create_engine("sqlite://")
    specs = block_specs(BitrixConfig(timezone=MSK).blocks)
    md = MetaData()
    counterparty_state.to_metadata(md)
    for spec in specs:
        data_table(spec, md)
    md.create_all(engine)
    inserted, _ = _written(engine, 1)
    _, updated = _written(engine, 2)
    for spec in specs:
        assert inserted[spec.table] == updated[spec.table] == {f.name for f in spec.fields}, spec.role
