"""The writer's rows, derived from the field table (syncd.contract.fields): one RowBuilder per block.

A block's row is spelled once, by its Kind: its columns in order, and per column where the value comes
from (the record's attribute, or a Fill the writer knows) and how the column's type stores it. From
that a RowBuilder makes, per counterparty, two functions: the row as a tuple of Python values (what
SQLite inserts and what the diff compares with stored rows), and the row as SQL text (what MySQL and
MariaDB insert). Their source is generated from the table and compiled once per builder, as dataclasses
do: one formatted string per payment, with whatever a counterparty's rows share rendered once, was a
fifth of the writer's time on a first load compared with a literal function per value.

Conversions by column type: double -> float (None stays None), datetime -> naive in the site's zone,
whole seconds (site_time), date, string and integer as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from typing import Any

from syncd.bitrix.sql import KIND_SQL, Quote, literal, sql_moment, sql_number
from syncd.contract.fields import Field, Fill, Kind
from syncd.contract.records import Header

_KIND_VALUES = ("payment_kind", "document_kind")  # text with precomputed literals (KIND_SQL)


def site_time(moment: datetime, bitrix_tz: tzinfo) -> datetime:
    """An aware datetime as Bitrix stores it: naive, in the site's zone, whole seconds."""
    if moment.tzinfo is not bitrix_tz:
        moment = moment.astimezone(bitrix_tz)
    # The constructor rather than replace(tzinfo=None, microsecond=0): a third of the cost on CPython
    # 3.11, once per payment.
    return datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def _site_time_or_none(moment: datetime | None, bitrix_tz: tzinfo) -> datetime | None:
    return None if moment is None else site_time(moment, bitrix_tz)


def _remembering(literal: Callable[[Any], str]) -> Callable[[Any], str]:
    """`literal`, rendering again only when the value is not the one it rendered last (values are immutable)."""
    last_value: Any = object()
    last_text = ""

    def remembered(v: Any) -> str:
        nonlocal last_value, last_text
        if v is not last_value:
            last_value, last_text = v, literal(v)
        return last_text

    return remembered


def money(value: Decimal | None) -> float | None:
    # Bitrix stores money as DOUBLE; converting once here makes stored and new values compare exactly.
    return None if value is None else float(value)


def payments_from(header: Header, bitrix_tz: tzinfo) -> datetime | None:
    """The start of the export's payments window (midnight in the file's zone) as Bitrix stores times."""
    if header.payments_from is None:
        return None
    return site_time(datetime.combine(header.payments_from, time(0), tzinfo=header.generated_at.tzinfo), bitrix_tz)


# Not frozen: made per counterparty, and a frozen dataclass's __init__ costs ~4x more.
@dataclass(slots=True)
class Fills:
    """What the writer fills in (fields.Fill): one per counterparty, by the Fill's source."""

    counterparty: str
    user: int | None
    currency: str
    as_of: datetime
    last_payment_date: date | None = None
    last_payment_sum: float | None = None


def column_of(kind: Kind, key: str) -> str:
    """The column of a field (by its contract key)."""
    column = kind.field(key).column
    assert column is not None, key
    return column.name


class RowBuilder:
    """One block's rows (see the module's doc).

    `given`: attributes whose stored value the caller has at hand anyway (the payments' date and sum,
    which rank the last payment): the row functions take them, converted, after the record, in this order.
    """

    def __init__(self, kind: Kind, bitrix_tz: tzinfo, quote: Quote | None = None, given: Sequence[str] = ()) -> None:
        self.kind = kind
        self.columns = tuple(c.name for c in kind.columns)
        self.given = tuple(given)
        self._stored = [r for r in kind.rows if r.column is not None]
        # The as-of stamp: written with every row, left out of the diff (it changes with every export).
        self.as_of_column = next((r.column.name for r in self._stored if isinstance(r, Fill) and r.source == "as_of"),
                                 None)
        missing = set(self.given) - {r.attr for r in self._stored if isinstance(r, Field)}
        if missing:
            raise ValueError(f"{kind.name}: no stored field {sorted(missing)}")
        ns: dict[str, Any] = {"tz": bitrix_tz, "local": site_time, "local_or_none": _site_time_or_none,
                              "money": money, "num": sql_number, "moment": sql_moment, "kinds": KIND_SQL, "q": quote}
        self._values_maker: Callable[[Fills], Callable[..., tuple[Any, ...]]]
        self._values_maker = self._compile(self._values_source(), "make_values", ns)
        self._sql_maker: Callable[[Fills], Callable[..., str]] | None = None
        if quote is not None:
            ns.update((f"lit{i}", literal(c.type, quote)) for i, c in enumerate(kind.columns))
            # A Fill is often the same value for every counterparty (the as-of time: its literal alone was
            # a tenth of a document row's time).
            fills = [i for i, r in enumerate(self._stored) if isinstance(r, Fill)]
            ns.update((f"lit{i}", _remembering(ns[f"lit{i}"])) for i in fills)
            self._sql_maker = self._compile(self._sql_source(), "make_sql", ns)

    def values(self, fills: Fills) -> Callable[..., tuple[Any, ...]]:
        """row(record, *given) -> the row's values in the order of `columns`."""
        return self._values_maker(fills)

    def sql(self, fills: Fills) -> Callable[..., str]:
        """row(record, *given) -> the row as SQL text, `(v1,v2,…)` in the order of `columns`."""
        assert self._sql_maker is not None, "a RowBuilder without a quote function renders no SQL"
        return self._sql_maker(fills)

    def mapping(self, values: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(self.columns, values, strict=True))

    # ------------------------------------------------------------------ the generated source

    def _compile(self, source: str, name: str, ns: dict[str, Any]) -> Any:
        exec(compile(source, f"<syncd rows of {self.kind.block}: {name}>", "exec"), ns)
        return ns[name]

    def _params(self) -> str:
        return ", ".join(["r", *(f"g_{a}" for a in self.given)])

    def _value(self, f: Field) -> str:
        """The expression of a field's stored value."""
        if f.attr in self.given:
            return f"g_{f.attr}"
        assert f.column is not None
        v = f"r.{f.attr}"
        if f.column.type == "double":
            return f"float({v})" if f.required else f"money({v})"
        if f.column.type == "datetime":
            return f"local({v}, tz)" if f.required else f"local_or_none({v}, tz)"
        return v

    def _values_source(self) -> str:
        head = [f"    f{i} = fills.{r.source}" for i, r in enumerate(self._stored) if isinstance(r, Fill)]
        items = [f"f{i}" if isinstance(r, Fill) else self._value(r) for i, r in enumerate(self._stored)]
        return "\n".join(["def make_values(fills):", *head, f"    def row({self._params()}):",
                          f"        return ({', '.join(items)},)", "    return row", ""])

    def _literal(self, i: int, f: Field) -> str:
        """The f-string piece of a field's SQL literal: the common cases inline, the rest by the column's type."""
        assert f.column is not None
        v, kind = self._value(f), f.column.type
        if kind == "string":
            return f"{{kinds.get({v}) or q({v})}}" if f.value in _KIND_VALUES else f"{{q({v})}}"
        if kind == "double" and f.required:
            return f"{{{v}!r}}"
        if kind == "datetime" and f.required:
            return f"'{{{v}.isoformat(' ')}}'"
        if kind == "date":
            return f"{{moment({v})}}"
        if kind in ("double", "integer"):
            return f"{{num({v})}}"
        return f"{{lit{i}({v})}}"

    def _sql_source(self) -> str:
        head: list[str] = []
        pieces: list[str] = []
        run: list[str] = []  # consecutive Fill columns: one string per counterparty
        for i, r in enumerate([*self._stored, None]):
            if isinstance(r, Fill):
                run.append(f"lit{i}(fills.{r.source})")
                continue
            if run:
                head.append(f"    c{len(head)} = ','.join(({', '.join(run)},))")
                pieces.append(f"{{c{len(head) - 1}}}")
                run = []
            if r is not None:
                pieces.append(self._literal(i, r))
        text = ",".join(pieces)
        return "\n".join(["def make_sql(fills):", *head, f"    def row({self._params()}):",
                          f'        return f"({text})"', "    return row", ""])
