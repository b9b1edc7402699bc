"""How the writer's statements are rendered and sent: SQL literals, the connection's quoting, multi-row
INSERTs as text, upserts by ID, and the thread that sends what nobody waits for (Sender).

What to write is the writer's business (syncd.bitrix.hlblock); this module only knows tables, columns
and values.
"""

from __future__ import annotations

import collections
import functools
import re
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert

from syncd.bitrix.blocks import chunks
from syncd.contract.fields import UserType
from syncd.contract.values import DOCUMENT_KINDS, PAYMENT_KINDS
from syncd.errors import ExportError

Row = dict[str, Any]
Quote = Callable[[str | None], str]

_STATEMENT_BYTES = 1 << 20  # per INSERT: the size PyMySQL's executemany used; far below max_allowed_packet
_DUPLICATE_KEY = 1062  # MySQL's ER_DUP_ENTRY
# What a string literal must escape, in either quoting mode; most values (GUIDs, names) have none of it.
NEEDS_ESCAPE: Final = re.compile("[\x00\n\r\x1a'\"\\\\]")
# The literals of the kinds the contract allows (others, were there any, are quoted as any text).
KIND_SQL: Final[dict[str | None, str]] = {None: "NULL", **{k: f"'{k}'" for k in PAYMENT_KINDS | DOCUMENT_KINDS}}


def sql_number(v: float | None) -> str:
    """The SQL literal of an int or float, or NULL; anything else raises."""
    if v is None:
        return "NULL"
    if type(v) is not int and type(v) is not float:
        raise TypeError(f"{type(v).__name__} is not a number")
    return repr(v)


def sql_moment(v: date | None, kind: type[date] = date) -> str:
    """The SQL literal of a date (of a datetime with kind=datetime), or NULL; anything else raises."""
    if v is None:
        return "NULL"
    if type(v) is not kind:
        raise TypeError(f"{type(v).__name__} is not a {kind.__name__}")
    return f"'{v.isoformat(' ')}'" if isinstance(v, datetime) else f"'{v.isoformat()}'"


def literal(user_type: UserType, quote: Quote) -> Callable[[Any], str]:
    """The SQL literal of a value of a column of this type (values of another type raise)."""
    if user_type == "string":
        return quote  # its regular expression refuses anything but text
    if user_type in ("integer", "double"):
        return sql_number
    return functools.partial(sql_moment, kind=datetime if user_type == "datetime" else date)


def quoter(conn: Connection) -> Quote:
    """The SQL literal of a text value or None (MySQL and MariaDB), as the connection escapes it."""
    # The connection's own escaping follows the server's NO_BACKSLASH_ESCAPES mode.
    return quote_with(conn.connection.dbapi_connection._escape_string)  # type: ignore[union-attr]


def quote_with(escape: Callable[[str], str]) -> Quote:
    """The SQL literal of a text value or None, escaped by `escape` when it needs to be."""
    # Most values (GUIDs, names) hold nothing to escape and skip it.
    needs_escape = NEEDS_ESCAPE.search

    def quote(v: str | None) -> str:
        if v is None:
            return "NULL"
        # The regular expression refuses anything but text.
        return "'" + (v if needs_escape(v) is None else escape(v)) + "'"

    return quote


class Sender:
    """Runs the statements whose result the writer does not wait for (INSERTs, digests, confirmations)
    from a thread of its own, so the server stores one chunk while the writer builds the next: on a
    first load the server's share alone is about as long as all the Python work.

    At most `depth` statements wait; anything else on the connection goes through Sql.conn, which
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


class Sql:
    """The writer's statements on one connection, in the writer's order (see Sender).

    MySQL and MariaDB get new rows as SQL text (`rendered`, with `quote` for text values): rendered by
    syncd rather than by PyMySQL's executemany, whose per-value converter dispatch was a quarter of a
    first load's time. SQLite (the demo) gets parameters.
    """

    def __init__(self, conn: Connection, name: str = "export") -> None:
        self.name = name  # the export's, for errors
        self._conn = conn
        self.sender = Sender(conn)
        self.sqlite = conn.dialect.name == "sqlite"
        self.rendered = conn.dialect.name in ("mysql", "mariadb")
        self.quote: Quote | None = quoter(conn) if self.rendered else None
        self._upsert_cache: dict[str, Insert] = {}

    @property
    def conn(self) -> Connection:
        """The connection, once the statements handed to the sender have run (statements keep their order)."""
        self.sender.drain()
        return self._conn

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        self.sender.submit(fn, *args)

    def execute_later(self, stmt: Any, params: Any = None) -> None:
        """Run a statement whose result nobody needs, in order, from the sender's thread."""
        if params is None:
            self.sender.submit(self._conn.execute, stmt)
        else:
            self.sender.submit(self._conn.execute, stmt, params)

    def insert_rows(self, table: Table, columns: Sequence[str], rows: list[Any]) -> None:
        """INSERT rows: SQL text `(v1,v2,…)` when `rendered`, else tuples; in the order of `columns`."""
        if not rows:
            return
        if self.rendered:
            self._insert_text(table, columns, rows)
            return
        for chunk in chunks(rows):
            self.conn.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in chunk])

    def _insert_text(self, table: Table, columns: Sequence[str], rows: list[str]) -> None:
        """INSERT rows given as SQL text in statements of ~1 MB."""
        prep = self._conn.dialect.identifier_preparer
        head = f"INSERT INTO {prep.quote(table.name)} ({', '.join(prep.quote(c) for c in columns)}) VALUES "
        parts: list[str] = []
        size = 0
        for part in rows:
            parts.append(part)
            size += len(part)
            if size >= _STATEMENT_BYTES:
                self.sender.submit(self._send_insert, table, head, parts)
                parts, size = [], 0
        if parts:
            self.sender.submit(self._send_insert, table, head, parts)

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

    def update_by_id(self, table: Table, rows: list[Row]) -> None:
        """Rewrite whole rows by primary key with one multi-row statement per chunk.

        INSERT … ON DUPLICATE KEY UPDATE on ID is the one bulk UPDATE that PyMySQL batches into a
        multi-row statement; SQLAlchemy renders it right for MySQL 8 (row alias) and MariaDB (VALUES()).
        """
        if not rows:
            return
        stmt = self._upsert_cache.get(table.name)
        if stmt is None:
            cols = [c for c in rows[0] if c != "ID"]
            if self.sqlite:
                ins = sqlite.insert(table)
                stmt = ins.on_conflict_do_update(index_elements=["ID"], set_={c: ins.excluded[c] for c in cols})
            else:
                mins = mysql.insert(table)
                stmt = mins.on_duplicate_key_update({c: mins.inserted[c] for c in cols})
            self._upsert_cache[table.name] = stmt
        for chunk in chunks(rows):
            self.conn.execute(stmt, list(chunk))

    def delete_ids(self, table: Table, ids: list[int]) -> None:
        for chunk in chunks(ids):
            self.conn.execute(table.delete().where(table.c.ID.in_(chunk)))

    def select_in(self, table: Table, column: str, keys: Sequence[str], *extra: Any,
                  columns: Sequence[str] = ()) -> list[Row]:
        """Rows whose `column` is in `keys`; only `columns` when given (reading rows back costs more than the SQL)."""
        rows: list[Row] = []
        what = [table.c[c] for c in columns] if columns else [table]
        for chunk in chunks(keys):
            q = select(*what).where(table.c[column].in_(chunk), *extra)
            result = self.conn.execute(q)
            names = list(result.keys())
            rows.extend(dict(zip(names, r, strict=True)) for r in result)
        return rows

    def close(self, *, failing: bool = False) -> None:
        self.sender.close(failing=failing)
