"""Ids that must be unique in the whole file: counterparty ids, payment ids, document (id, dueDate) keys.

A file may hold millions of payments. Keeping every id string would cost hundreds of bytes per
payment, and even one 64-bit hash per id in memory would grow with the file, so the first pass hands
one hash per id to a `HashSpill` (syncd.contract.idspill) per kind, which keeps a few hundred KiB in
memory and the rest in an anonymous temporary file, and compares them at the end one partition at a
time. Only if two hashes are equal does a second pass over the file look for the actual ids, so a
hash collision never becomes a reported problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, cast

from syncd.contract.idspill import HashSpill
from syncd.contract.raw import RawCounterparty
from syncd.contract.values import parse_date, parse_guid


class Places(Protocol):
    """Where a record is, and how a problem is reported (syncd.contract.checks.Checker)."""

    def problem(self, message: str, *, where: str | None = None, field: str | None = None) -> None: ...

    def counterparty_where(self, raw: RawCounterparty) -> str: ...

    def item_where(self, raw: RawCounterparty, kind: str, index: int, item: object) -> str: ...


class Ids:
    """The hashes of the file's ids, one spill per kind."""

    def __init__(self) -> None:
        self.counterparties = HashSpill()
        self.payments = HashSpill()
        self.documents = HashSpill()

    def close(self) -> None:
        """Release the temporary files."""
        for spill in (self.counterparties, self.payments, self.documents):
            spill.close()

    def report(self, rescan: Callable[[], Iterator[RawCounterparty]], places: Places) -> None:
        """After the last record: each id seen twice, with where (found by `rescan`)."""
        suspects = (self.counterparties.colliding(), self.payments.colliding(), self.documents.colliding())
        if any(suspects):
            _report_duplicates(places, rescan(), *suspects)


def due_label(due: object) -> str:
    return f" with due date {due}" if due is not None else " without a due date"


def quiet(parse: Callable[[object], object], value: object) -> object:
    """`parse(value)`, or None where it is bad (reported elsewhere)."""
    try:
        return parse(value)
    except ValueError:
        return None


def _find(places: Places, records: Iterator[RawCounterparty], counterparties: set[int], payments: set[int],
          documents: set[int]) -> dict[tuple[str, object], list[str]]:
    """(kind, id) -> where each id whose hash is among the suspects is."""
    found: dict[tuple[str, object], list[str]] = {}

    def note(kind: str, key: object, where: Callable[[], str]) -> None:
        found.setdefault((kind, key), []).append(where())

    for raw in records:
        cid = quiet(parse_guid, raw.attrs.get("id"))
        if cid is not None and hash(cid) in counterparties:
            note("counterparty", cid, lambda raw=raw: places.counterparty_where(raw))  # type: ignore[misc]
        if payments:
            for index, item in enumerate(raw.payments, 1):
                pid = quiet(parse_guid, item.get("id")) if hasattr(item, "get") else None
                if pid is not None and hash(pid) in payments:
                    note("payment", pid, lambda raw=raw, i=index, it=item:  # type: ignore[misc]
                         places.item_where(raw, "payment", i, it))
        if documents:
            for index, item in enumerate(raw.documents, 1):
                did = quiet(parse_guid, item.get("id")) if hasattr(item, "get") else None
                if did is None:
                    continue
                line_key = (did, quiet(parse_date, item.get("dueDate")))
                if hash(line_key) in documents:
                    note("document", line_key, lambda raw=raw, i=index, it=item:  # type: ignore[misc]
                         places.item_where(raw, "document", i, it))
    return found


def _report_duplicates(places: Places, records: Iterator[RawCounterparty], counterparties: set[int],
                       payments: set[int], documents: set[int]) -> None:
    for (kind, key), where in _find(places, records, counterparties, payments, documents).items():
        if len(where) < 2:
            continue  # two different ids with one hash: not a duplicate
        listed = "; ".join(where[:5]) + ("; …" if len(where) > 5 else "")
        if kind == "document":
            did, due = cast(tuple[str, object], key)
            message = (f"document {did}{due_label(due)} is listed {len(where)} times ({listed}); "
                       "a document may appear once per due date")
        elif kind == "payment":
            message = (f"payment id {key} is listed {len(where)} times ({listed}); "
                       "payment ids must be unique in the file")
        else:
            message = (f"counterparty id {key} is listed {len(where)} times ({listed}); "
                       "each counterparty must appear once in the file")
        places.problem(message, where=where[1], field="id")
