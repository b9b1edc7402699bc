"""What the blocks' text columns can hold, read once per run, and the checks of values against it.

A file can be valid by the contract and still hold a value the database cannot store: a payment
purpose over a TEXT column's 65,535 bytes, an emoji in a utf8mb3 table, `₽` in a cp1251 one, or
any character the connection's own charset (`?charset=` in database.url) cannot carry. A strict
server refuses such a value (errors 1406, 1366) and a lenient one cuts or mangles it silently, so
the checker refuses the file first, naming the record and the field (syncd.contract.checks.Checker).

The column facts come from information_schema at the start of a run (one query). Per value the
check is cheap: a text no longer than the column holds even at the charset's widest characters
passes on its length alone, and the charset is looked at only where it is narrower than the
connection's text (for utf8mb4 columns on a utf8mb4 connection: never). Fields whose values are
bounded by the contract (GUIDs, INN, KPP, currency, kind) are checked once against the columns,
not per value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any, Final

from sqlalchemy import Connection, bindparam, text

from syncd.bitrix.schema import BlockSpec
from syncd.contract.fields import COUNTERPARTY, DOCUMENT, PAYMENT, STORED, Fill, Kind
from syncd.contract.records import Counterparty
from syncd.contract.values import DOCUMENT_KINDS, PAYMENT_KINDS, show_character

# MySQL charset -> (Python codec, only the Basic Multilingual Plane, bytes per character at most).
# MySQL's latin1 is Windows-1252.
_KNOWN: Final[dict[str, tuple[str, bool, int]]] = {
    "utf8mb4": ("utf-8", False, 4), "utf8mb3": ("utf-8", True, 3), "utf8": ("utf-8", True, 3),
    "utf16": ("utf-16-be", False, 4), "utf16le": ("utf-16-le", False, 4), "utf32": ("utf-32-be", False, 4),
    "ucs2": ("utf-16-be", True, 2), "cp1251": ("cp1251", False, 1), "latin1": ("cp1252", False, 1),
    "koi8r": ("koi8_r", False, 1), "koi8u": ("koi8_u", False, 1), "cp866": ("cp866", False, 1),
    "ascii": ("ascii", False, 1), "latin2": ("iso8859_2", False, 1), "cp1250": ("cp1250", False, 1),
    "cp1256": ("cp1256", False, 1), "cp1257": ("cp1257", False, 1), "greek": ("iso8859_7", False, 1),
}
_WHOLE_UNICODE: Final = ("utf-8", "utf-16-be", "utf-16-le", "utf-32-be")
_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")
_TEXT_TYPES: Final = frozenset({"tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob",
                                "longblob"})


@dataclass(frozen=True)
class Charset:
    name: str
    codec: str | None  # None: a charset syncd does not know; only what must fail is reported
    bmp_only: bool
    maxlen: int

    @classmethod
    def named(cls, name: str, maxlen: int | None = None) -> Charset:
        codec, bmp_only, widest = _KNOWN.get(name, (None, False, maxlen or 4))
        return cls(name, codec, bmp_only, widest)

    @property
    def whole_unicode(self) -> bool:
        return self.codec in _WHOLE_UNICODE and not self.bmp_only

    def bad_character(self, value: str) -> str | None:
        """The first character of `value` this charset cannot hold, if any."""
        if self.whole_unicode or self.codec is None or value.isascii():
            return None
        if self.bmp_only:
            found = _ASTRAL.search(value)
            return found.group() if found is not None else None
        try:
            value.encode(self.codec)
        except UnicodeEncodeError as e:
            return value[e.start]
        return None

    def size(self, value: str) -> int | None:
        """`value`'s length in bytes in this charset (None for a charset syncd does not know)."""
        if self.codec is None:
            return None
        return len(value.encode(self.codec, "surrogatepass" if self.codec in _WHOLE_UNICODE else "replace"))


@dataclass(frozen=True)
class Column:
    table: str
    name: str
    type: str  # as information_schema.COLUMNS.COLUMN_TYPE says: text, varchar(255)…
    charset: Charset
    max_bytes: int | None  # TEXT and BLOB types count bytes
    max_chars: int | None  # CHAR and VARCHAR count characters

    @property
    def safe_chars(self) -> int:
        """A value of at most this many characters fits whatever they are."""
        if self.max_chars is not None:
            return self.max_chars
        return (self.max_bytes or 0) // self.charset.maxlen

    def problem(self, value: str) -> str | None:
        bad = self.charset.bad_character(value)
        where = f"the column {self.name} ({self.table}, {self.type}"
        if bad is not None:
            return (f"character {show_character(bad)} cannot be stored in column {self.name} of {self.table} "
                    f"(charset {self.charset.name}); convert the table to utf8mb4 or remove the character in 1C")
        if self.max_chars is not None and len(value) > self.max_chars:
            return (f"{_number(len(value))} characters, {where}) holds at most {_number(self.max_chars)}; "
                    "shorten it in 1C")
        size = self.charset.size(value) if self.max_bytes is not None else None
        if self.max_bytes is not None and (size if size is not None else len(value)) > self.max_bytes:
            shown = _number(size) + " bytes" if size is not None else f"{_number(len(value))} characters"
            return (f"{shown}, {where} in {self.charset.name}) holds at most {_number(self.max_bytes)} bytes; "
                    "shorten it in 1C")
        return None


def _number(n: int) -> str:
    return f"{n:,}".replace(",", " ")


class _Field:
    """One field of a record and every column it is written to, behind the database connection."""

    def __init__(self, attr: str, label: str, columns: Sequence[Column], connection: Charset) -> None:
        self.attr = attr
        self.label = label
        self.get: Callable[[Any], str | None] = attrgetter(attr)
        self.columns = tuple(columns)
        self.connection = connection
        self.safe = min(c.safe_chars for c in columns)
        self.narrow = tuple(cs for cs in (connection, *(c.charset for c in columns))
                            if not cs.whole_unicode and cs.codec is not None)

    def suspect(self, items: Sequence[Any]) -> bool:
        """Quick: False when the field of every one of `items` surely fits (a pass in C over the lot)."""
        if not self.narrow:
            return max(map(len, filter(None, map(self.get, items))), default=0) > self.safe
        present = list(filter(None, map(self.get, items)))
        if not present:
            return False
        if max(map(len, present)) > self.safe:
            return True
        joined = "".join(present)
        return not joined.isascii() and any(cs.bad_character(joined) is not None for cs in self.narrow)

    def problem(self, value: str) -> str | None:
        """What keeps `value` out of the database, for a human; None if it fits."""
        bad = self.connection.bad_character(value)
        if bad is not None:
            return (f"character {show_character(bad)} cannot be sent over the database connection: database.url "
                    f"sets charset={self.connection.name}; take charset out of database.url (syncd then uses "
                    "utf8mb4) or remove the character in 1C")
        for column in self.columns:
            found = column.problem(value)
            if found is not None:
                return found
        return None


# The longest value the contract allows of each kind, in ASCII characters. A text column that holds it
# needs no look at the values; free text (a kind not named here, such as a new text field) is checked
# per value.
_BOUNDS: Final[dict[str, int]] = {
    "guid": 36, "inn": 12, "kpp": 9, "currency": 3, "payment_kind": max(map(len, PAYMENT_KINDS)),
    "document_kind": max(map(len, DOCUMENT_KINDS)),
}
# (attribute, label, bound in ASCII characters or None for free text, the columns it goes to as (role, column)).
_Spec = tuple[str, str, int | None, tuple[tuple[str, str], ...]]


def _specs(kind: Kind) -> tuple[_Spec, ...]:
    """The fields of `kind` stored in text columns (syncd.contract.fields), each with every column it goes
    to: its own, and for a counterparty's the columns of the same name that other blocks fill from it
    (its id and currency on its payments and documents)."""
    out = []
    for f in kind.fields:
        if f.column is None or f.column.type != "string":
            continue
        assert kind.block is not None  # a stored kind
        targets = [(kind.block, f.column.name)]
        if kind is COUNTERPARTY:
            targets += [(other.block, row.column.name) for other in STORED if other is not kind and other.block
                        for row in other.rows if isinstance(row, Fill) and row.column.name == f.column.name]
        out.append((f.attr, f.key, _BOUNDS.get(f.value), tuple(targets)))
    return tuple(out)


_CP_FIELDS: Final = _specs(COUNTERPARTY)
_PAYMENT_FIELDS: Final = _specs(PAYMENT)
_DOCUMENT_FIELDS: Final = _specs(DOCUMENT)


class Capacity:
    """The checks of one run: which record fields need a look, and how to tell a value that does not fit."""

    def __init__(self, columns: dict[tuple[str, str], Column], tables: Mapping[str, str], connection: Charset,
                 ledger_error: Column | None = None) -> None:
        self.connection = connection
        self._ledger_error = ledger_error

        def fields(specs: Sequence[_Spec]) -> tuple[_Field, ...]:
            out = []
            for attr, label, bound, targets in specs:
                cols = [columns[(tables[role], name)] for role, name in targets if (tables[role], name) in columns]
                if not cols:
                    continue
                if bound is not None and all(bound <= c.safe_chars for c in cols):
                    continue  # ASCII of a bounded length: every value the contract allows fits
                out.append(_Field(attr, label, cols, connection))
            return tuple(out)

        self.counterparty_fields = fields(_CP_FIELDS)
        self.payment_fields = fields(_PAYMENT_FIELDS)
        self.document_fields = fields(_DOCUMENT_FIELDS)
        self._counterparty_fits = _one_short(self.counterparty_fields)
        self._payments_fit = _all_short(self.payment_fields)
        self._documents_fit = _all_short(self.document_fields)

    def check(self, cp: Counterparty) -> tuple[str, int, str, str] | None:
        """(counterparty | payment | document, its number from 1, field, what is wrong) of the first value
        of `cp` that the database cannot store, or None."""
        if self._counterparty_fits(cp) and self._payments_fit(cp.payments) and self._documents_fit(cp.documents):
            return None
        one = (cp,)
        for f in self.counterparty_fields:
            if f.suspect(one) and (found := f.problem(f.get(cp) or "")) is not None:
                return "counterparty", 0, f.label, found
        payments, documents = cp.payments, cp.documents
        if payments:
            for f in self.payment_fields:
                if f.suspect(payments) and (where := self._first("payment", payments, f)) is not None:
                    return where
        if documents:
            for f in self.document_fields:
                if f.suspect(documents) and (where := self._first("document", documents, f)) is not None:
                    return where
        return None

    @staticmethod
    def _first(kind: str, items: Sequence[Any], f: _Field) -> tuple[str, int, str, str] | None:
        for index, item in enumerate(items, 1):
            value = f.get(item)
            if value and (found := f.problem(value)) is not None:
                return kind, index, f.label, found
        return None

    def storable(self, message: str) -> str:
        """`message` with what the connection or the ledger's error column cannot hold replaced by '?'."""
        out = message
        for cs in (self.connection, self._ledger_error.charset if self._ledger_error else None):
            while cs is not None and (bad := cs.bad_character(out)) is not None:
                out = out.replace(bad, "?")
        return out


def _one_short(fields: Sequence[_Field]) -> Callable[[Any], bool]:
    """Like _all_short, for the fields of one record."""
    if not fields or any(f.narrow for f in fields):
        return lambda item: not fields
    safe = min(f.safe for f in fields)
    if len(fields) == 1:
        get = fields[0].get
        return lambda item: len(get(item) or "") <= safe
    fit = _all_short(fields)
    return lambda item: fit((item,))


def _all_short(fields: Sequence[_Field]) -> Callable[[Sequence[Any]], bool]:
    """Quick: True when every field of every item is surely short enough, in one pass over all the fields
    (a third cheaper than one pass per field); False sends the items to the per-field checks. Never True
    where a charset needs a look."""
    if not fields or any(f.narrow for f in fields):
        return lambda items: not fields
    safe = min(f.safe for f in fields)
    if len(fields) == 1:
        get = fields[0].get
        return lambda items: max(map(len, filter(None, map(get, items))), default=0) <= safe
    many = attrgetter(*(f.attr for f in fields))
    return lambda items: max(map(len, filter(None, chain.from_iterable(map(many, items)))), default=0) <= safe


_QUERY: Final = text(
    "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.CHARACTER_MAXIMUM_LENGTH,"
    " c.CHARACTER_OCTET_LENGTH, c.CHARACTER_SET_NAME, s.MAXLEN"
    " FROM information_schema.COLUMNS c"
    " LEFT JOIN information_schema.CHARACTER_SETS s ON s.CHARACTER_SET_NAME = c.CHARACTER_SET_NAME"
    " WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME IN :tables"
    " AND c.CHARACTER_OCTET_LENGTH IS NOT NULL"
).bindparams(bindparam("tables", expanding=True))


def read_capacity(conn: Connection, specs: Sequence[BlockSpec]) -> Capacity | None:
    """The text columns of the three blocks (and of the ledger's reasons) as the server has them; None
    where there is no information_schema (SQLite, the demo: its TEXT holds anything)."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return None
    tables: dict[str, str] = {spec.role: spec.table for spec in specs}
    connection = connection_charset(conn)
    columns: dict[tuple[str, str], Column] = {}
    for table, name, data_type, column_type, max_chars, max_octets, charset, maxlen in conn.execute(
            _QUERY, {"tables": [*tables.values(), "syncd_imports"]}):
        # A binary column stores the bytes the connection sends.
        cs = Charset.named(charset, maxlen) if charset else connection
        text_type = str(data_type).lower() in _TEXT_TYPES
        columns[(table, name)] = Column(table, name, str(column_type), cs,
                                        int(max_octets) if text_type else None,
                                        None if text_type else int(max_chars))
    return Capacity(columns, tables, connection, columns.get(("syncd_imports", "error")))


def connection_charset(conn: Connection) -> Charset:
    """The charset the client connection speaks (database.url's ?charset=, utf8mb4 by default)."""
    raw = conn.connection.dbapi_connection
    name = str(getattr(raw, "charset", "utf8mb4"))
    return Charset.named("utf8mb4" if name == "utf8" else name)
