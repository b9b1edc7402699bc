"""Plain records that flow through the pipeline: reader → validator → writer.

Amounts are Decimal (1C money is Number(15,2); never float), GUIDs lower case,
datetimes timezone-aware (the reader attaches the source zone to naive values).

Payment, Document and Counterparty are made from the field table (syncd.contract.fields) when this
module is imported: one attribute per field, the required ones first, then the others with their
defaults, in the table's order. The classes under TYPE_CHECKING say the same for mypy;
tests/test_fields.py holds them to the generated ones.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal

from syncd.contract.fields import COUNTERPARTY, DOCUMENT, PAYMENT, Field, Kind, Value

Mode = Literal["full", "delta"]

# What a value of each kind of the table is once parsed (syncd.contract.values).
VALUE_TYPES: Final[dict[Value, type]] = {
    "guid": str, "amount": Decimal, "text": str, "date": dt.date, "datetime": dt.datetime, "currency": str,
    "inn": str, "kpp": str, "payment_kind": str, "document_kind": str,
}
# The names a row's `default` may use besides Python literals.
_NAMED_DEFAULTS: Final[dict[str, object]] = {"_ZERO": Decimal("0.00")}


@dataclass(frozen=True, slots=True)
class Header:
    export_id: str
    generated_at: dt.datetime
    mode: Mode = "full"
    payments_from: dt.date | None = None
    format_version: str = "1"


@dataclass(frozen=True, slots=True)
class LastPayment:
    date: dt.date
    sum: Decimal


def annotation(f: Field) -> Any:
    """The type of a field's attribute: its value's, or None too unless it is required or has a default."""
    kind = VALUE_TYPES[f.value]
    return kind if f.required or f.default is not None else kind | None


def default(f: Field) -> object:
    """The attribute's value when the file leaves the field out."""
    if f.default is None:
        return None
    if f.default in _NAMED_DEFAULTS:
        return _NAMED_DEFAULTS[f.default]
    return ast.literal_eval(f.default)


def record_order(kind: Kind) -> tuple[Field, ...]:
    """The fields in the order of the record's attributes (and of its __init__'s arguments)."""
    return tuple(f for f in kind.fields if f.required) + tuple(f for f in kind.fields if not f.required)


def _record(kind: Kind, *more: tuple[str, Any, Any]) -> type:
    spec: list[tuple[str, Any] | tuple[str, Any, Any]] = [
        (f.attr, annotation(f)) if f.required else (f.attr, annotation(f), dataclasses.field(default=default(f)))
        for f in record_order(kind)]
    cls = dataclasses.make_dataclass(kind.name, [*spec, *more], slots=True)
    cls.__module__ = __name__  # make_dataclass (before 3.12) leaves it "types"
    return cls


# Not frozen: a frozen dataclass's __init__ costs ~4x more, and a file can hold millions of payments.
if TYPE_CHECKING:
    @dataclass(slots=True)
    class Payment:
        id: str
        date: dt.datetime
        sum: Decimal
        number: str | None = None
        kind: str | None = None
        purpose: str | None = None

    @dataclass(slots=True)
    class Document:
        id: str
        date: dt.date
        outstanding: Decimal
        kind: str | None = None
        number: str | None = None
        due_date: dt.date | None = None
        amount: Decimal | None = None

    @dataclass(slots=True)
    class Counterparty:
        id: str
        debt: Decimal
        overdue_debt: Decimal = Decimal("0.00")
        credit_limit: Decimal | None = None
        payable: Decimal = Decimal("0.00")
        currency: str = "RUB"
        inn: str | None = None
        kpp: str | None = None
        name: str | None = None
        last_payment: LastPayment | None = None
        payments: list[Payment] = dataclasses.field(default_factory=list)
        documents: list[Document] = dataclasses.field(default_factory=list)
        digest: str | None = None
else:
    Payment = _record(PAYMENT)
    Document = _record(DOCUMENT)
    Counterparty = _record(
        COUNTERPARTY,
        ("last_payment", LastPayment | None, dataclasses.field(default=None)),
        ("payments", list[Payment], dataclasses.field(default_factory=list)),
        ("documents", list[Document], dataclasses.field(default_factory=list)),
        # What the writer records as applied for it (see Unchanged); None when the reader was not asked.
        ("digest", str | None, dataclasses.field(default=None)),
    )


@dataclass(slots=True)
class Unchanged:
    """A counterparty whose bytes in the file are exactly those syncd last applied for it.

    The reader checks its ids (they count towards the file's uniqueness checks) but does not parse
    its values: they were valid when they were applied, and the writer only confirms its rows.
    """

    id: str
    digest: str
    payments: int
    documents: int
    ref: object = None  # what the digest index knows of its stored rows (for the writer; opaque here)


@dataclass(frozen=True, slots=True)
class Summary:
    counterparties: int
    payments: int
    documents: int
