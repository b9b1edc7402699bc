"""Plain records that flow through the pipeline: reader → validator → writer.

Amounts are Decimal (1C money is Number(15,2); never float), GUIDs lower case,
datetimes timezone-aware (the reader attaches the source zone to naive values).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

Mode = Literal["full", "delta"]


@dataclass(frozen=True, slots=True)
class Header:
    export_id: str
    generated_at: dt.datetime
    mode: Mode = "full"
    payments_from: dt.date | None = None
    format_version: str = "1"


# Not frozen: a frozen dataclass's __init__ costs ~4x more, and a file can hold millions of payments.
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


@dataclass(frozen=True, slots=True)
class LastPayment:
    date: dt.date
    sum: Decimal


@dataclass(slots=True)
class Counterparty:
    id: str
    debt: Decimal
    payable: Decimal = Decimal("0.00")
    overdue_debt: Decimal = Decimal("0.00")
    credit_limit: Decimal | None = None
    inn: str | None = None
    kpp: str | None = None
    name: str | None = None
    currency: str = "RUB"
    last_payment: LastPayment | None = None
    payments: list[Payment] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    # What the writer records as applied for it (see Unchanged); None when the reader was not asked.
    digest: str | None = None


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
