"""The writer: applies one export's records to the three HL-block data tables.

It runs inside a transaction its caller owns, so a file is applied whole or not at all.
Counterparties are handled in batches: for each batch the existing rows are read once, compared
with the file, and only the differences are written with multi-row statements. That keeps the
statement count at a few per batch and leaves unchanged payment and document rows untouched.

Time never goes backwards: a counterparty confirmed by a newer export keeps its rows. "Newer" is
decided in UTC, on the as-of stamp syncd keeps per counterparty (syncd_counterparty_state.as_of_utc;
UF_UPDATED_AT, naive in the site's zone, repeats a local hour every autumn); for a row without one,
UF_UPDATED_AT read in bitrix.timezone, the earlier reading when ambiguous. A stamp later than now +
max_clock_skew is not trusted (a typo or a hand edit must not freeze a row), and an approved export
(override) is newer than everything. Every counterparty the file lists gets this export's stamp; its
balance row's UF_UPDATED_AT follows in one statement at the end (Writer._confirm_rows), so the apply
holds no lock on the balance rows of unchanged counterparties while it runs.
"""

from __future__ import annotations

import bisect
import collections
import functools
import hashlib
import itertools
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Final, TypeVar, cast

from sqlalchemy import Connection, Table, func, or_, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert

from syncd import __version__
from syncd.bitrix.asof import EPOCH, AsOf, local_seconds_to_utc, seconds, utc_of_local
from syncd.bitrix.schema import BlockSpec, data_table
from syncd.bitrix.users import Linker
from syncd.contract.records import Counterparty, Document, Header, Payment, Unchanged
from syncd.contract.values import DOCUMENT_KINDS, PAYMENT_KINDS
from syncd.errors import ExportError
from syncd.ledger import counterparty_state

Row = dict[str, Any]
T = TypeVar("T")

BATCH = 1000  # counterparties per batch: ~10k payments, IN-lists well under max_allowed_packet
CHUNK = 5000  # rows or ids per statement
# The order of the writer's row tuples (inserts) and of the dicts it compares with stored rows.
PAYMENT_COLUMNS = ("UF_PAYMENT_XML_ID", "UF_CONTRACTOR_XML_ID", "UF_BITRIX_USER_ID", "UF_DATE", "UF_SUM",
                   "UF_CURRENCY", "UF_NUMBER", "UF_KIND", "UF_PURPOSE", "UF_UPDATED_AT")
DOCUMENT_COLUMNS = ("UF_DOCUMENT_XML_ID", "UF_CONTRACTOR_XML_ID", "UF_BITRIX_USER_ID", "UF_KIND", "UF_NUMBER",
                    "UF_CURRENCY", "UF_DATE", "UF_DUE_DATE", "UF_AMOUNT", "UF_OUTSTANDING", "UF_UPDATED_AT")
BALANCE_COLUMNS = ("UF_CONTRACTOR_XML_ID", "UF_BITRIX_USER_ID", "UF_DEBT", "UF_OVERDUE_DEBT", "UF_CREDIT_LIMIT",
                   "UF_LAST_PAYMENT_DATE", "UF_LAST_PAYMENT_SUM", "UF_UPDATED_AT", "UF_PAYABLE", "UF_CURRENCY",
                   "UF_INN", "UF_KPP", "UF_NAME")
_NEW_ID = 1 << 62  # ranks rows not inserted yet after every existing row ID
_STATEMENT_BYTES = 1 << 20  # per INSERT: the size PyMySQL's executemany used; far below max_allowed_packet
_DUPLICATE_KEY = 1062  # MySQL's ER_DUP_ENTRY
# What a string literal must escape, in either quoting mode; most values (GUIDs, names) have none of it.
_NEEDS_ESCAPE = re.compile("[\x00\n\r\x1a'\"\\\\]")


class _Sender:
    """Runs the statements whose result the writer does not wait for (INSERTs, digests, confirmations)
    from a thread of its own, so the server stores one chunk while the writer builds the next: on a
    first load the server's share alone is about as long as all the Python work.

    At most `depth` statements wait; anything else on the connection goes through Writer.conn, which
    waits for them first, so statements run in the writer's order and the transaction is the same.
    An error in a statement surfaces at the next wait. SQLite (the demo) runs them inline: its
    connections belong to one thread.
    """

    def __init__(self, conn: Connection, depth: int = 3) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="syncd-sql") if conn.dialect.name != "sqlite" else None
        self._pending: collections.deque[Future[object]] = collections.deque()
        self._depth = depth

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        if self._pool is None:
            fn(*args)
            return
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args))

    def drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def close(self, *, failing: bool = False) -> None:
        """Wait for the statements handed over. When the apply is failing anyway, the queued ones are
        dropped and their errors ignored: the caller only needs the connection back, to roll back."""
        try:
            if failing:
                for f in self._pending:
                    f.cancel()
            else:
                self.drain()
        finally:
            self._pending.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=True)


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


def _salt(options: ApplyOptions, payments_from: datetime | None, source_tz: tzinfo | None) -> bytes:
    # Whatever changes how a counterparty's rows come out, or whether its bytes are valid, belongs in
    # its digest: the site's zone, the payments window, the zone of the file's times, syncd's rules.
    return repr((str(options.bitrix_tz), payments_from, str(source_tz), __version__)).encode()


class DigestIndex:
    """The digests of what syncd last applied, so the reader can tell an unchanged counterparty before
    parsing it (syncd.contract.checks.KnownDigests), and the writer can confirm it without reading anything.

    A digest covers the counterparty's bytes in the file, its site user and the salt (see _salt); the
    writer stores it per counterparty in syncd_counterparty_state. The index holds every digest that is
    still trusted and whose balance row exists, with that row's ID and UF_UPDATED_AT, in four sorted
    arrays: 32 bytes per counterparty.
    """

    def __init__(self, salt: bytes, linker: Linker, rows: Iterable[tuple[str, int, int | None]]) -> None:
        """`rows`: (digest, balance row ID, the counterparty's as-of time in UTC as seconds since 1970)."""
        self._salt = salt
        self._user_for = linker.user_for
        hi, lo, ids, stamps = array("Q"), array("Q"), array("q"), array("q")
        for digest, row_id, stamp in rows:
            hi.append(int(digest[:16], 16))
            lo.append(int(digest[16:32], 16))
            ids.append(row_id)
            stamps.append(_NO_STAMP if stamp is None else stamp)
        order = sorted(range(len(hi)), key=hi.__getitem__)
        self._hi = array("Q", (hi[i] for i in order))
        self._lo = array("Q", (lo[i] for i in order))
        self._ids = array("q", (ids[i] for i in order))
        self._stamps = array("q", (stamps[i] for i in order))

    def digest(self, guid: str, inn: str | None, kpp: str | None, content: bytes) -> str:
        h = hashlib.blake2b(self._salt, digest_size=16)
        h.update(f"{guid}|{self._user_for(guid, inn, kpp)}|".encode())
        # In pieces under 2 KiB: hashlib lets go of the GIL for larger ones, and taking it back from
        # the writer's threads costs more than the hashing itself.
        view = memoryview(content)
        for i in range(0, len(view), _HASH_PIECE):
            h.update(view[i : i + _HASH_PIECE])
        return h.hexdigest()

    def find(self, digest: str) -> tuple[int, datetime | None] | None:
        """(balance row ID, its as-of time in UTC) of the counterparty last applied with this digest."""
        hi, lo = int(digest[:16], 16), int(digest[16:32], 16)
        keys = self._hi
        i = bisect.bisect_left(keys, hi)
        while i < len(keys) and keys[i] == hi:
            if self._lo[i] == lo:
                stamp = self._stamps[i]
                return self._ids[i], None if stamp == _NO_STAMP else _EPOCH + timedelta(seconds=stamp)
            i += 1
        return None


_HASH_PIECE = 2047  # hashlib's GIL_MINSIZE is 2048
_EPOCH = EPOCH
_NO_STAMP = -(1 << 63)


def digest_index(conn: Connection, blocks: Blocks, header: Header, linker: Linker, options: ApplyOptions,
                 source_tz: tzinfo) -> DigestIndex:
    """The index for applying `header`'s export in the caller's transaction (the writer reads the same snapshot)."""
    st, bal = counterparty_state, blocks.balance
    trust_after = datetime.now(UTC).replace(tzinfo=None) - options.trust_digest_for
    # Stamps as seconds from the server: PyMySQL's datetime per row was a third of the index's time,
    # and the index is built before the reader can start. UTC: syncd's own stamp, else the row's.
    q = (
        select(st.c.digest, bal.c.ID, seconds(conn, st.c.as_of_utc), seconds(conn, bal.c.UF_UPDATED_AT))
        .join(bal, bal.c.UF_CONTRACTOR_XML_ID == st.c.guid)
        .where(st.c.checked_at >= trust_after)
    )
    salt = _salt(options, _payments_from(header, options.bitrix_tz), source_tz)
    tz = options.bitrix_tz
    return DigestIndex(salt, linker, ((d, i, local_seconds_to_utc(local, tz) if utc is None else utc)
                                      for d, i, utc, local in conn.execute(q)))


def _local(moment: datetime, bitrix_tz: tzinfo) -> datetime:
    """An aware datetime as Bitrix stores it: naive, in the site's zone, whole seconds."""
    if moment.tzinfo is not bitrix_tz:
        moment = moment.astimezone(bitrix_tz)
    # The constructor rather than replace(tzinfo=None, microsecond=0): a third of the cost on CPython
    # 3.11, once per payment.
    return datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def _payments_from(header: Header, bitrix_tz: tzinfo) -> datetime | None:
    """The start of the export's payments window (midnight in the file's zone) as Bitrix stores times."""
    if header.payments_from is None:
        return None
    return _local(datetime.combine(header.payments_from, time(0), tzinfo=header.generated_at.tzinfo), bitrix_tz)


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


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _money(value: Decimal | None) -> float | None:
    # Bitrix stores money as DOUBLE; converting once here makes stored and new values compare exactly.
    return None if value is None else float(value)


def _diff_columns(table: Table) -> list[str]:
    """What the diff of payments and documents reads back: all but UF_UPDATED_AT, which it ignores
    (and whose DATETIME is one of the dearer values for PyMySQL to convert)."""
    return [c.name for c in table.columns if c.name != "UF_UPDATED_AT"]


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, float) and isinstance(new, float):
        return round(old, 2) == round(new, 2)
    return bool(old == new)


def _payment_tuple(p: Payment, cp: Counterparty, user: int | None, when: datetime, amount: float,
                   as_of: datetime) -> tuple[Any, ...]:
    """A payment row in the order of PAYMENT_COLUMNS."""
    return (p.id, cp.id, user, when, amount, cp.currency, p.number, p.kind, p.purpose, as_of)


def _document_tuple(d: Document, cp: Counterparty, user: int | None, as_of: datetime) -> tuple[Any, ...]:
    """A document row in the order of DOCUMENT_COLUMNS."""
    return (d.id, cp.id, user, d.kind, d.number, cp.currency, d.date, d.due_date, _money(d.amount),
            float(d.outstanding), as_of)


def _sql_number(v: float | None) -> str:
    """The SQL literal of an int or float, or NULL; anything else raises."""
    if v is None:
        return "NULL"
    if type(v) is not int and type(v) is not float:
        raise TypeError(f"{type(v).__name__} is not a number")
    return repr(v)


def _sql_moment(v: date | None, kind: type[date] = date) -> str:
    """The SQL literal of a date (of a datetime with kind=datetime), or NULL; anything else raises."""
    if v is None:
        return "NULL"
    if type(v) is not kind:
        raise TypeError(f"{type(v).__name__} is not a {kind.__name__}")
    return f"'{v.isoformat(' ')}'" if isinstance(v, datetime) else f"'{v.isoformat()}'"


# The literals of the kinds the contract allows (others, were there any, are quoted as any text).
_KIND_SQL: Final[dict[str | None, str]] = {None: "NULL", **{k: f"'{k}'" for k in PAYMENT_KINDS | DOCUMENT_KINDS}}

PaymentRow = Callable[[Payment, datetime, float], Any]
DocumentRow = Callable[[Document], Any]


class Writer:
    """Applies one export inside the caller's transaction."""

    def __init__(
        self,
        conn: Connection,
        blocks: Blocks,
        header: Header,
        linker: Linker,
        options: ApplyOptions,
        progress: Callable[[int], None] | None = None,
        name: str = "export",
    ):
        self.name = name
        self._conn = conn
        self._sender = _Sender(conn)
        self.b = blocks
        self.header = header
        self.linker = linker
        self.opt = options
        self.progress = progress
        self.counts = ApplyCounts()
        self.as_of = self._local(header.generated_at)
        self.as_of_utc = header.generated_at.astimezone(UTC).replace(tzinfo=None)
        self.payments_from = _payments_from(header, options.bitrix_tz)
        self._upsert_cache: dict[str, Insert] = {}
        # MySQL and MariaDB get new payment and document rows as SQL text, rendered as they are built
        # (see _payment_row); SQLite (the demo) gets tuples.
        self._rendered = conn.dialect.name in ("mysql", "mariadb")
        self._quote = self._quoter() if self._rendered else None
        self._as_of_sql = f"'{self.as_of.isoformat(' ')}'"
        now = datetime.now(UTC).replace(tzinfo=None)
        self.checked_at = now.replace(microsecond=0)
        self.trust_after = now - options.trust_digest_for
        self._as_of = AsOf(self.as_of_utc, now + options.max_clock_skew, options.override)
        self._newer = self._as_of.newer
        self._confirming = False  # some balance row waits for _confirm_rows
        # Whatever changes how a counterparty's rows come out belongs in its digest.
        self._salt = repr((options.bitrix_tz, self.payments_from))
        # Per counterparty of the current batch: its site user, and (date, rank, sum) of its newest
        # incoming payment in the file.
        self._users: dict[str, int | None] = {}
        self._newest: dict[str, tuple[datetime, int, float]] = {}

    # ------------------------------------------------------------------ helpers

    @property
    def conn(self) -> Connection:
        """The connection, once the INSERTs handed to the sender have run (statements keep their order)."""
        self._sender.drain()
        return self._conn

    def _local(self, moment: datetime) -> datetime:
        return _local(moment, self.opt.bitrix_tz)

    def _update_by_id(self, table: Table, rows: list[Row]) -> None:
        """Rewrite whole rows by primary key with one multi-row statement per chunk.

        INSERT … ON DUPLICATE KEY UPDATE on ID is the one bulk UPDATE that PyMySQL batches into a
        multi-row statement; SQLAlchemy renders it right for MySQL 8 (row alias) and MariaDB (VALUES()).
        """
        if not rows:
            return
        stmt = self._upsert_cache.get(table.name)
        if stmt is None:
            cols = [c for c in rows[0] if c != "ID"]
            if self.conn.dialect.name == "sqlite":
                ins = sqlite.insert(table)
                stmt = ins.on_conflict_do_update(index_elements=["ID"], set_={c: ins.excluded[c] for c in cols})
            else:
                mins = mysql.insert(table)
                stmt = mins.on_duplicate_key_update({c: mins.inserted[c] for c in cols})
            self._upsert_cache[table.name] = stmt
        for chunk in chunks(rows):
            self.conn.execute(stmt, list(chunk))

    def _insert(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """INSERT `rows` (tuples in the order of `columns`) with multi-row statements of ~1 MB."""
        if not rows:
            return
        if not self._rendered:
            for chunk in chunks(rows):
                self.conn.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in chunk])
            return
        # Rendered here rather than by PyMySQL's executemany, whose per-value converter dispatch was a
        # quarter of a first load's time: each column has one type, so each gets one literal function.
        literals = [self._literal(table, c) for c in columns]
        self._insert_sql(table, columns, ["(" + ",".join([lit(v) for lit, v in zip(literals, row, strict=True)]) + ")"
                                          for row in rows])

    def _insert_rows(self, table: Table, columns: Sequence[str], rows: list[Any]) -> None:
        """INSERT rows made by _payment_row or _document_row: SQL text on MySQL, tuples elsewhere."""
        if self._rendered:
            self._insert_sql(table, columns, rows)
        else:
            self._insert(table, columns, rows)

    def _insert_sql(self, table: Table, columns: Sequence[str], rows: list[str]) -> None:
        """INSERT rows given as SQL text, `(v1,v2,…)` in the order of `columns`, in statements of ~1 MB."""
        prep = self._conn.dialect.identifier_preparer
        head = f"INSERT INTO {prep.quote(table.name)} ({', '.join(prep.quote(c) for c in columns)}) VALUES "
        parts: list[str] = []
        size = 0
        for part in rows:
            parts.append(part)
            size += len(part)
            if size >= _STATEMENT_BYTES:
                self._sender.submit(self._send_insert, table, head, parts)
                parts, size = [], 0
        if parts:
            self._sender.submit(self._send_insert, table, head, parts)

    def _quoter(self) -> Callable[[str | None], str]:
        """The SQL literal of a text value or None (MySQL and MariaDB): what _literal gives for a text column."""
        # The connection's own escaping follows the server's NO_BACKSLASH_ESCAPES mode; most values
        # (GUIDs, names) hold nothing to escape and skip it.
        escape = self._conn.connection.dbapi_connection._escape_string  # type: ignore[union-attr]
        needs_escape = _NEEDS_ESCAPE.search

        def quote(v: str | None) -> str:
            if v is None:
                return "NULL"
            # The regular expression refuses anything but text.
            return "'" + (v if needs_escape(v) is None else escape(v)) + "'"

        return quote

    def _payment_row(self, cp: Counterparty, user: int | None) -> PaymentRow:
        """How a new payment of `cp` becomes a row for _insert_rows.

        On MySQL the row is SQL text at once, with what all of the counterparty's rows share rendered
        once: one formatted string per payment instead of ten literal calls was a fifth of the writer's
        time on a first load. The typed helpers and the quote function refuse values of another type;
        `amount` is float(p.sum), made by the one caller, and a kind is one of the contract's.
        """
        as_of = self.as_of
        if self._quote is None:
            return lambda p, when, amount: _payment_tuple(p, cp, user, when, amount, as_of)
        q, kinds, stamp = self._quote, _KIND_SQL, self._as_of_sql
        shared, currency = f"{q(cp.id)},{_sql_number(user)}", q(cp.currency)

        def row(p: Payment, when: datetime, amount: float) -> str:
            return (f"({q(p.id)},{shared},'{when.isoformat(' ')}',{amount!r},{currency},{q(p.number)},"
                    f"{kinds.get(p.kind) or q(p.kind)},{q(p.purpose)},{stamp})")

        return row

    def _document_row(self, cp: Counterparty, user: int | None) -> DocumentRow:
        """How a new document of `cp` becomes a row for _insert_rows (see _payment_row)."""
        as_of = self.as_of
        if self._quote is None:
            return lambda d: _document_tuple(d, cp, user, as_of)
        q, kinds, stamp = self._quote, _KIND_SQL, self._as_of_sql
        shared, currency = f"{q(cp.id)},{_sql_number(user)}", q(cp.currency)

        def row(d: Document) -> str:
            return (f"({q(d.id)},{shared},{kinds.get(d.kind) or q(d.kind)},{q(d.number)},{currency},"
                    f"{_sql_moment(d.date)},{_sql_moment(d.due_date)},{_sql_number(_money(d.amount))},"
                    f"{_sql_number(float(d.outstanding))},{stamp})")

        return row

    def _literal(self, table: Table, column: str) -> Callable[[Any], str]:
        """The SQL literal of a value of `column`, from the column's type (values of another type raise)."""
        kind = table.c[column].type.python_type
        if kind is str:
            quote = self._quote
            assert quote is not None  # _literal is for MySQL and MariaDB only

            def text(v: Any) -> str:
                if v is not None and type(v) is not str:
                    raise TypeError(f"{column}: {type(v).__name__} is not text")
                return quote(v)

            return text
        if kind is int or kind is float:
            return _sql_number
        if kind is datetime or kind is date:
            return functools.partial(_sql_moment, kind=kind)
        raise TypeError(f"{table.name}.{column}: no literal for {kind.__name__}")  # pragma: no cover

    def _send_insert(self, table: Table, head: str, parts: list[str]) -> None:
        try:
            # no_parameters: the text is final; with parameters PyMySQL would apply % formatting to it.
            self._conn.exec_driver_sql(head + ",".join(parts), execution_options={"no_parameters": True})
        except IntegrityError as exc:
            code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
            if code != _DUPLICATE_KEY:
                raise
            detail = exc.orig.args[1] if len(exc.orig.args) > 1 else exc.orig  # type: ignore[union-attr]
            raise ExportError(
                self.name, f"an id is listed more than once ({table.name}: {detail}); ids must be unique in the file",
            ) from None

    def _delete_ids(self, table: Table, ids: list[int]) -> None:
        for chunk in chunks(ids):
            self.conn.execute(table.delete().where(table.c.ID.in_(chunk)))

    def _select_in(
        self, table: Table, column: str, keys: Sequence[str], *extra: Any, columns: Sequence[str] = ()
    ) -> list[Row]:
        """Rows whose `column` is in `keys`; only `columns` when given (reading rows back costs more than the SQL)."""
        rows: list[Row] = []
        what = [table.c[c] for c in columns] if columns else [table]
        for chunk in chunks(keys):
            q = select(*what).where(table.c[column].in_(chunk), *extra)
            result = self.conn.execute(q)
            names = list(result.keys())
            rows.extend(dict(zip(names, r, strict=True)) for r in result)
        return rows

    def _compare(self, counts: BlockCounts, existing: Row, new: Row, updates: list[Row]) -> bool:
        """Queue the update if a value differs; True when the row is unchanged."""
        changed = any(
            not _same(existing.get(k), v) for k, v in new.items() if k != "UF_UPDATED_AT"
        )
        if changed:
            updates.append({"ID": existing["ID"], **new})
            counts.updated += 1
        else:
            counts.unchanged += 1
        return not changed

    # ------------------------------------------------------------------ apply

    def apply(self, counterparties: Iterable[Counterparty | Unchanged]) -> ApplyCounts:
        try:
            counts = self._apply(counterparties)
        except BaseException:
            # The caller rolls back on this connection, which the sender may still be using.
            self._sender.close(failing=True)
            raise
        self._sender.close()
        return counts

    def _apply(self, counterparties: Iterable[Counterparty | Unchanged]) -> ApplyCounts:
        known_before = self.conn.execute(select(func.count()).select_from(self.b.balance)).scalar_one()
        # A block that was empty when the file started holds only rows this file wrote, and the file's
        # counterparties and payments are each listed once (the reader checks; a repeat that meets its
        # twin in the database is a unique-key error, reported as the file's fault in _insert): so
        # looking them up cannot find anything. On a first load that is most of the SELECTs.
        self._balance_empty = not known_before
        self._payments_empty = self._empty(self.b.payments)
        self._documents_empty = self._empty(self.b.documents)
        for batch in _batches(counterparties, BATCH):
            self._apply_batch(batch)
            if self.progress:
                self.progress(len(batch))
        if self.header.mode == "full":
            self._apply_missing(int(known_before))
        self._confirm_rows()
        return self.counts

    def _apply_batch(self, batch: list[Counterparty | Unchanged]) -> None:
        bal = self.b.balance
        current: list[Counterparty] = []
        confirm: list[str] = []
        for cp in batch:
            if type(cp) is Unchanged:
                # What the index read at the start: no lookup per batch for the unchanged majority.
                _row_id, stamp = cast(tuple[int, datetime | None], cp.ref)
                if self._newer(stamp):
                    self._skip_newer(1)
                    continue
                self._count_unchanged(cp.payments, cp.documents)
                confirm.append(cp.id)
            else:
                current.append(cp)  # type: ignore[arg-type]
        self.counts.counterparties += len(batch)
        if not current:
            self._confirm(confirm)
            return
        # Only what decides the path; whole rows are read below for the counterparties that changed.
        path_cols = ("ID", "UF_CONTRACTOR_XML_ID", "UF_UPDATED_AT")
        ids = [cp.id for cp in current]
        rows = [] if self._balance_empty else self._select_in(bal, "UF_CONTRACTOR_XML_ID", ids, columns=path_cols)
        stamps = {r["UF_CONTRACTOR_XML_ID"]: r for r in rows}
        # Stored digests and stamps only count for counterparties with a balance row (see below).
        stored = self._stored_digests(list(stamps))
        newer = {g for g, r in stamps.items() if self._newer(self._stamp(r, stored.get(g)))}
        if newer:
            self._skip_newer(len(newer))
            current = [cp for cp in current if cp.id not in newer]
        # One lookup per counterparty: the digest and all three blocks need its user.
        self._users = {cp.id: self.linker.user_for(cp.id, cp.inn, cp.kpp) for cp in current}
        digests = {cp.id: cp.digest or self._digest(cp) for cp in current}
        changed: list[Counterparty] = []
        for cp in current:
            old = stored.get(cp.id)
            if cp.id in stamps and old is not None and old[0] == digests[cp.id] and old[1] >= self.trust_after:
                # The file says exactly what syncd last wrote for it: nothing to read back or compare.
                self._count_unchanged(len(cp.payments), len(cp.documents))
                confirm.append(cp.id)
            else:
                changed.append(cp)
        self._confirm(confirm)
        if not changed:
            return
        existing = {
            r["UF_CONTRACTOR_XML_ID"]: r
            for r in self._select_in(bal, "UF_CONTRACTOR_XML_ID", [cp.id for cp in changed if cp.id in stamps])
        }
        self._apply_payments(changed)
        self._apply_documents(changed)
        self._apply_balance(changed, existing)
        self._store_digests([(cp.id, digests[cp.id]) for cp in changed])

    def _stamp(self, row: Row, stored: tuple[str, datetime, datetime | None] | None) -> datetime | None:
        """A counterparty's as-of time in UTC: syncd's own, else its balance row's read in the site's zone."""
        if stored is not None and stored[2] is not None:
            return stored[2]
        return utc_of_local(row["UF_UPDATED_AT"], self.opt.bitrix_tz)

    def _empty(self, table: Table) -> bool:
        return self.conn.execute(select(table.c.ID).limit(1)).first() is None

    def _skip_newer(self, count: int) -> None:
        # Confirmed by a newer export than this one: left as they are.
        self.counts.skipped_newer += count
        self.counts.balance.unchanged += count

    def _count_unchanged(self, payments: int, documents: int) -> None:
        self.counts.balance.unchanged += 1
        self.counts.payments.unchanged += payments
        self.counts.documents.unchanged += documents

    # ------------------------------------------------------------------ digests

    def _digest(self, cp: Counterparty) -> str:
        # Records read without a DigestIndex (the digest of the file's bytes) get one of their repr, which
        # is exact (Decimals, aware datetimes) and ~50 µs a counterparty: cheaper than reading rows back.
        user = self._users[cp.id]
        return hashlib.blake2b(repr((self._salt, user, cp)).encode(), digest_size=16).hexdigest()

    def _stored_digests(self, guids: Sequence[str]) -> dict[str, tuple[str, datetime, datetime | None]]:
        """(digest, checked_at, as_of_utc) per counterparty that has them."""
        st = counterparty_state
        found: dict[str, tuple[str, datetime, datetime | None]] = {}
        for chunk in chunks(guids):
            q = select(st.c.guid, st.c.digest, st.c.checked_at, st.c.as_of_utc).where(st.c.guid.in_(chunk))
            found.update((g, (d, c, a)) for g, d, c, a in self.conn.execute(q))
        return found

    def _store_digests(self, pairs: Sequence[tuple[str, str]], checked_at: datetime | None = None) -> None:
        """Digest, checked_at and this export's stamp per counterparty (upserted)."""
        if not pairs:
            return
        st = counterparty_state
        checked = checked_at or self.checked_at
        rows = [{"guid": g, "digest": d, "checked_at": checked, "as_of_utc": self.as_of_utc} for g, d in pairs]
        stmt: Insert
        if self._conn.dialect.name == "sqlite":
            ins = sqlite.insert(st)
            stmt = ins.on_conflict_do_update(index_elements=["guid"], set_={
                "digest": ins.excluded.digest, "checked_at": ins.excluded.checked_at,
                "as_of_utc": ins.excluded.as_of_utc})
        else:
            mins = mysql.insert(st)
            stmt = mins.on_duplicate_key_update(digest=mins.inserted.digest, checked_at=mins.inserted.checked_at,
                                                as_of_utc=mins.inserted.as_of_utc)
        for chunk in chunks(rows):
            self._sender.submit(self._conn.execute, stmt, list(chunk))  # nothing to wait for: no result

    def _forget_digests(self, guids: Sequence[str]) -> None:
        """Rows changed outside the digest's knowledge (zeroed as missing): compare them next time. Their
        stamp stays, as of this export."""
        self._store_digests([(g, "") for g in guids], checked_at=_EPOCH)

    def _confirm(self, guids: list[str]) -> None:
        """The values are the same, but the counterparty is now confirmed as of this export: its stamp in
        syncd's own table now, its balance row's UF_UPDATED_AT (the date the site shows) at the end."""
        st = counterparty_state
        self._confirming = self._confirming or bool(guids)
        for chunk in chunks(guids):
            stmt = st.update().where(st.c.guid.in_(chunk)).values(as_of_utc=self.as_of_utc)
            self._sender.submit(self._conn.execute, stmt)

    def _confirm_rows(self) -> None:
        """UF_UPDATED_AT = this export's as-of time on every balance row it confirmed, in one statement
        right before the commit: the rows are locked only from here to the commit, so an admin's edit of a
        balance row never waits out a long apply (or a download, with apply_while_downloading)."""
        if not self._confirming:
            return  # a first load, or only changed rows: nothing to confirm
        t, st = self.b.balance, counterparty_state
        stmt = (update(t)
                .where(t.c.UF_CONTRACTOR_XML_ID == st.c.guid, st.c.as_of_utc == self.as_of_utc,
                       or_(t.c.UF_UPDATED_AT.is_(None), t.c.UF_UPDATED_AT != self.as_of))
                .values(UF_UPDATED_AT=self.as_of))
        self.conn.execute(stmt)

    def _apply_payments(self, cps: list[Counterparty]) -> None:
        t = self.b.payments
        counts = self.counts.payments
        file_ids = [p.id for cp in cps for p in cp.payments]
        self._refuse_repeated_ids(cps)
        cols = _diff_columns(t)
        stale: list[int] = []
        existing: dict[str, Row] = {}
        rest = file_ids
        if self.payments_from is not None and not self._payments_empty:
            # One read serves the diff and the cancelled-payment check: the window's rows of these
            # counterparties. A payment in the window that the file no longer lists was cancelled.
            listed = set(file_ids)
            in_window = self._select_in(
                t, "UF_CONTRACTOR_XML_ID", [cp.id for cp in cps], t.c.UF_DATE >= self.payments_from, columns=cols
            )
            existing = {r["UF_PAYMENT_XML_ID"]: r for r in in_window}
            stale = [r["ID"] for r in in_window if r["UF_PAYMENT_XML_ID"] not in listed]
            # Listed but not found there: dated before the window, or stored under another counterparty.
            rest = [i for i in file_ids if i not in existing]
        if not self._payments_empty:
            existing.update(
                (r["UF_PAYMENT_XML_ID"], r) for r in self._select_in(t, "UF_PAYMENT_XML_ID", rest, columns=cols)
            )
        inserts: list[Any] = []
        updates: list[Row] = []
        newest: dict[str, tuple[datetime, int, float]] = {}
        as_of, bitrix_tz, find = self.as_of, self.opt.bitrix_tz, existing.get
        for cp in cps:
            user = self._users[cp.id]
            new_row = self._payment_row(cp, user)
            best: tuple[datetime, int, float] | None = None
            for p in cp.payments:
                when = _local(p.date, bitrix_tz)
                amount = float(p.sum)  # the sign of the Decimal: a cent is far from float's smallest
                old = find(p.id)
                if old is None:
                    inserts.append(new_row(p, when, amount))
                    # Rank as the payments block will: by date, then row ID; rows inserted now get IDs
                    # above every existing one, in this order.
                    rank_id = _NEW_ID + len(inserts)
                else:
                    row = _payment_tuple(p, cp, user, when, amount, as_of)
                    self._compare(counts, old, dict(zip(PAYMENT_COLUMNS, row, strict=True)), updates)
                    rank_id = int(old["ID"])
                if amount > 0 and (best is None or (when, rank_id) > best[:2]):
                    best = (when, rank_id, amount)
            if best is not None:
                newest[cp.id] = best
        self._newest = newest
        counts.inserted += len(inserts)
        self._delete_ids(t, stale)
        counts.deleted += len(stale)
        self._insert_rows(t, PAYMENT_COLUMNS, inserts)
        self._update_by_id(t, updates)

    def _refuse_repeated_ids(self, cps: list[Counterparty]) -> None:
        """A payment listed under two counterparties of one batch would hit the unique index as a database error.

        The reader finds repeated ids across the whole file once it has read it; this catches the ones
        that meet within one batch first, so they are reported as what they are: a bad file.
        """
        owner: dict[str, str] = {}
        for cp in cps:
            for p in cp.payments:
                first = owner.setdefault(p.id, cp.id)
                if first != cp.id:
                    raise ExportError(
                        self.name, f"payment id {p.id} appears twice: under counterparty {first} and under {cp.id}",
                        where=f"counterparty {cp.id}", field="Payment id",
                    )

    def _apply_documents(self, cps: list[Counterparty]) -> None:
        t = self.b.documents
        counts = self.counts.documents
        existing: dict[tuple[str, str, date | None], Row] = {}
        extra: list[int] = []
        stored = [] if self._documents_empty else self._select_in(
            t, "UF_CONTRACTOR_XML_ID", [cp.id for cp in cps], columns=_diff_columns(t))
        for r in stored:
            key = (r["UF_CONTRACTOR_XML_ID"], r["UF_DOCUMENT_XML_ID"], r["UF_DUE_DATE"])
            if key in existing:
                extra.append(r["ID"])  # a duplicate row (made by hand?): the file's list is the truth
            else:
                existing[key] = r
        inserts: list[Any] = []
        updates: list[Row] = []
        as_of = self.as_of
        for cp in cps:
            user = self._users[cp.id]
            new_row = self._document_row(cp, user)
            for d in cp.documents:
                old = existing.pop((cp.id, d.id, d.due_date), None)
                if old is None:
                    inserts.append(new_row(d))
                    counts.inserted += 1
                else:
                    row = _document_tuple(d, cp, user, as_of)
                    self._compare(counts, old, dict(zip(DOCUMENT_COLUMNS, row, strict=True)), updates)
        gone = [r["ID"] for r in existing.values()] + extra
        self._delete_ids(t, gone)
        counts.deleted += len(gone)
        self._insert_rows(t, DOCUMENT_COLUMNS, inserts)
        self._update_by_id(t, updates)

    def _last_payments(self, cps: list[Counterparty]) -> dict[str, tuple[date, float]]:
        """Newest incoming payment per counterparty, as the payments block holds them after this batch.

        With a payments window the file lists every payment of the counterparty from that day on, and
        the rest are older: so when the file's newest incoming payment is inside the window, it is the
        answer, without reading anything back. So it is when the block was empty before this file: all
        its rows are the file's. The others are asked of the database (which also means waiting for
        the INSERTs handed to the sender).
        """
        best: dict[str, tuple[date, float]] = {}
        need: list[str] = []
        only_file = self._payments_empty
        for cp in cps:
            if cp.last_payment is not None:
                continue
            mine = self._newest.get(cp.id)
            if mine is not None and (only_file or (self.payments_from is not None and mine[0] >= self.payments_from)):
                best[cp.id] = (mine[0].date(), mine[2])
            elif not only_file:
                need.append(cp.id)
        t = self.b.payments
        found: dict[str, tuple[datetime, int, float]] = {}
        for chunk in chunks(need):
            q = select(t.c.UF_CONTRACTOR_XML_ID, t.c.UF_DATE, t.c.ID, t.c.UF_SUM).where(
                t.c.UF_CONTRACTOR_XML_ID.in_(chunk), t.c.UF_SUM > 0, t.c.UF_DATE.is_not(None)
            )
            for guid, when, row_id, amount in self.conn.execute(q):
                if guid not in found or (when, row_id) > found[guid][:2]:
                    found[guid] = (when, row_id, amount)
        best.update((g, (v[0].date(), v[2])) for g, v in found.items())
        return best

    def _apply_balance(self, cps: list[Counterparty], existing: dict[str, Row]) -> None:
        t = self.b.balance
        counts = self.counts.balance
        last = self._last_payments(cps)
        inserts: list[tuple[Any, ...]] = []
        updates: list[Row] = []
        for cp in cps:
            if cp.last_payment is not None:
                lp_date: date | None = cp.last_payment.date
                lp_sum = _money(cp.last_payment.sum)
            else:
                lp_date, lp_sum = last.get(cp.id, (None, None))
            new = {
                "UF_CONTRACTOR_XML_ID": cp.id,
                "UF_BITRIX_USER_ID": self._users[cp.id],
                "UF_DEBT": _money(cp.debt),
                "UF_OVERDUE_DEBT": _money(cp.overdue_debt),
                "UF_CREDIT_LIMIT": _money(cp.credit_limit),
                "UF_LAST_PAYMENT_DATE": lp_date,
                "UF_LAST_PAYMENT_SUM": lp_sum,
                "UF_UPDATED_AT": self.as_of,
                "UF_PAYABLE": _money(cp.payable),
                "UF_CURRENCY": cp.currency,
                "UF_INN": cp.inn,
                "UF_KPP": cp.kpp,
                "UF_NAME": cp.name,
            }
            old = existing.get(cp.id)
            if old is None:
                inserts.append(tuple(new[c] for c in BALANCE_COLUMNS))
                counts.inserted += 1
            elif self._compare(counts, old, new, updates):
                self._confirming = True  # at the end (_confirm_rows): its stamp comes with the digest
        self._insert(t, BALANCE_COLUMNS, inserts)
        self._update_by_id(t, updates)

    def _apply_missing(self, known_before: int) -> None:
        """Counterparties the site knows but this full export does not list no longer owe anything."""
        t, st = self.b.balance, counterparty_state
        # Every counterparty the file lists has this export's stamp now, or a newer one (skipped).
        q = (select(t.c.ID, t.c.UF_CONTRACTOR_XML_ID, t.c.UF_DEBT, t.c.UF_OVERDUE_DEBT, t.c.UF_PAYABLE,
                    t.c.UF_UPDATED_AT, st.c.as_of_utc)
             .select_from(t.outerjoin(st, st.c.guid == t.c.UF_CONTRACTOR_XML_ID))
             .where(or_(st.c.as_of_utc.is_(None), st.c.as_of_utc != self.as_of_utc)))
        missing = [dict(r._mapping) for r in self.conn.execute(q)]
        missing = [r for r in missing if not self._newer(
            r["as_of_utc"] if r["as_of_utc"] is not None else utc_of_local(r["UF_UPDATED_AT"], self.opt.bitrix_tz))]
        if self.opt.on_missing == "keep" and self.counts.counterparties > 0:
            return
        with_debt = [r for r in missing if any(r[k] for k in ("UF_DEBT", "UF_OVERDUE_DEBT", "UF_PAYABLE"))]
        if self.opt.guard and known_before > 0:
            if self.counts.counterparties == 0:
                raise HeldByGuard(
                    f"the export lists no counterparty while the site knows {known_before}: "
                    "an empty export is usually a failed query in 1C"
                )
            ratio = len(with_debt) / known_before
            if self.opt.on_missing != "keep" and ratio > self.opt.max_missing_ratio:
                raise HeldByGuard(
                    f"the export would take the debts off {len(with_debt)} of {known_before} counterparties "
                    f"({ratio:.0%}, more than max_missing_ratio {self.opt.max_missing_ratio:.0%})"
                )
        if self.opt.on_missing == "keep" or not missing:
            return
        guids = [r["UF_CONTRACTOR_XML_ID"] for r in missing]
        if self.opt.on_missing == "delete":
            for chunk in chunks(guids):
                self.conn.execute(st.delete().where(st.c.guid.in_(chunk)))
        else:
            self._forget_digests(guids)
        docs = self.b.documents
        gone_docs = 0
        for chunk in chunks(guids):
            gone_docs += self.conn.execute(docs.delete().where(docs.c.UF_CONTRACTOR_XML_ID.in_(chunk))).rowcount
        self.counts.documents.deleted += gone_docs
        ids = [r["ID"] for r in missing]
        if self.opt.on_missing == "delete":
            self._delete_ids(t, ids)
            self.counts.balance.deleted += len(ids)
            return
        zero_ids = [r["ID"] for r in with_debt]
        for chunk in chunks(zero_ids):
            self.conn.execute(
                t.update().where(t.c.ID.in_(chunk)).values(
                    UF_DEBT=0.0, UF_OVERDUE_DEBT=0.0, UF_PAYABLE=0.0, UF_UPDATED_AT=self.as_of
                )
            )
        self.counts.balance.updated += len(zero_ids)
        # Already zero: only confirmed as of this export.
        zeroed = set(zero_ids)
        quiet = [i for i in ids if i not in zeroed]
        for chunk in chunks(quiet):
            self.conn.execute(t.update().where(t.c.ID.in_(chunk)).values(UF_UPDATED_AT=self.as_of))
        self.counts.balance.unchanged += len(quiet)


def apply_export(
    conn: Connection,
    blocks: Blocks,
    header: Header,
    counterparties: Iterable[Counterparty | Unchanged],
    linker: Linker,
    options: ApplyOptions,
    progress: Callable[[int], None] | None = None,
    name: str = "export",
) -> ApplyCounts:
    """Apply one export in the caller's transaction. Raises HeldByGuard or ExportError (caller rolls back)."""
    return Writer(conn, blocks, header, linker, options, progress, name).apply(counterparties)
