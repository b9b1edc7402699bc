"""What the writer is given and what it answers: the blocks' tables, the apply's options, its counts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import TypeVar

from sqlalchemy import Table

from syncd.bitrix.schema import BlockSpec, data_table

T = TypeVar("T")

CHUNK = 5000  # rows or ids per statement


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class Blocks:
    balance: Table
    payments: Table
    documents: Table

    @classmethod
    def from_specs(cls, specs: Sequence[BlockSpec]) -> Blocks:
        tables = {s.role: data_table(s) for s in specs}
        return cls(tables["balance"], tables["payments"], tables["documents"])


@dataclass(frozen=True)
class ApplyOptions:
    bitrix_tz: tzinfo
    on_missing: str = "zero"  # zero | delete | keep
    max_missing_ratio: float = 0.2
    guard: bool = True  # False when an admin approved the export
    # How long a counterparty's digest is trusted: after that its rows are read back and compared
    # again, so a hand edit in the HL-blocks is put right within this time.
    trust_digest_for: timedelta = timedelta(hours=24)
    # An as-of stamp later than now + this is not trusted as "newer" (bitrix.max_clock_skew).
    max_clock_skew: timedelta = timedelta(minutes=10)
    # An admin approved the export: it is applied over rows confirmed by newer exports too.
    override: bool = False


@dataclass
class BlockCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def written(self) -> int:
        return self.inserted + self.updated + self.deleted


@dataclass
class ApplyCounts:
    balance: BlockCounts = field(default_factory=BlockCounts)
    payments: BlockCounts = field(default_factory=BlockCounts)
    documents: BlockCounts = field(default_factory=BlockCounts)
    counterparties: int = 0
    skipped_newer: int = 0  # counterparties confirmed by a newer export: left as they were

    def by_role(self) -> dict[str, BlockCounts]:
        return {"balance": self.balance, "payments": self.payments, "documents": self.documents}


class HeldByGuard(Exception):
    """The export would take the debts off too many counterparties; it needs an admin's approval."""
