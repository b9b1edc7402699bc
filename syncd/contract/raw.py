"""A counterparty as a reader hands it to the checker, before any value is parsed, and what the checker
asks of the run path (the database's capacity, the writer's known digests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from syncd.contract.records import Counterparty

Dialect = Literal["xml", "json"]
Fields = Mapping[str, object]


@dataclass(slots=True)
class RawCounterparty:
    """One counterparty as read, before any value is parsed.

    `attrs` answers the fields XML spells as attributes, `values` those it spells as child elements
    (the amounts; see syncd.contract.fields). For JSON both are the counterparty's object. Items are
    lxml elements (XML, with `.sourceline`) or dicts (JSON).
    """

    index: int
    line: int | None
    attrs: Fields
    values: Fields
    last_payment: Fields | None = None
    payments: Sequence[Fields] = ()
    documents: Sequence[Fields] = ()
    # The counterparty's own bytes (XML) or a serialisation of what was read (JSON), when the checker
    # has known digests to compare with (`Checker.known`).
    content: bytes | None = None
    # Set by Checker.match: (id, digest) of `content`, and what the writer knows of that digest.
    digested: tuple[str, str] | None = None
    known_as: object = None
    # A known counterparty's ids as a reader took them from its bytes, instead of `payments` and
    # `documents` (syncd.formats.shortcut.xmlsplit): payment ids, and document (id, dueDate as written), the
    # ids in lower case.
    payment_ids: list[str] | None = None
    document_keys: list[tuple[str, str | None]] | None = None


class Capacity(Protocol):
    """What the database's columns can hold (syncd.bitrix.capacity): known only on the run path."""

    def check(self, cp: Counterparty) -> tuple[str, int, str, str] | None:
        """(counterparty | payment | document, its number from 1, field, what is wrong) of the first value
        of `cp` the database cannot store, or None."""
        ...


class KnownDigests(Protocol):
    """What the writer last applied, per counterparty (syncd.bitrix.hlblock.DigestIndex)."""

    def digest(self, guid: str, inn: str | None, kpp: str | None, content: bytes) -> str: ...

    def find(self, digest: str) -> object | None:
        """What the writer needs of the counterparty last applied with this digest; None if there is none."""
        ...


def counterparty_label(index: int, ident: object) -> str:
    """"counterparty #3 (id=…)"; an id too long to be one is cut, so that a message stays a line."""
    if not isinstance(ident, str) or not ident:
        return f"counterparty #{index}"
    return f"counterparty #{index} (id={ident if len(ident) <= 40 else ident[:36] + '…'})"
