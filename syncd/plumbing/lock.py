"""One runner at a time, everywhere: a lock file on this host and a MySQL named lock for every host.

The lock file (flock on `<state.dir>/syncd.lock`) stops a second run on the same machine before it
touches the network; it records who holds it so the refusal can say so. The named lock
(`GET_LOCK('syncd:<database>', 0)`) stops runs on other hosts pointed at the same database. It
belongs to a session, so it lives on a connection of its own that no pool may recycle or ping
away (NullPool); `verify()` asks the server again right before a commit, because a connection that
dropped in the meantime has silently lost the lock.

Both are non-blocking: a run that finds the lock taken is refused with LockedError, which the
CLI maps to exit code 8.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from syncd.config import Config
from syncd.errors import DatabaseError, LockedError
from syncd.plumbing.db import database_url, db_reason
from syncd.plumbing.statedir import FILE_MODE, make_dirs, state_error, writing

log = logging.getLogger("syncd.lock")

LOCK_FILE = "syncd.lock"
_MAX_LOCK_NAME = 64  # MySQL refuses longer names


def lock_name(database: str) -> str:
    name = f"syncd:{database}"
    if len(name) > _MAX_LOCK_NAME:
        name = "syncd:" + hashlib.sha256(database.encode()).hexdigest()[:40]
    return name


class FileLock:
    """flock(2) on a file in state.dir; released by the kernel even if the process is killed."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def holder(self) -> str:
        try:
            info = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            info = ""
        return info or "an unknown process"

    def acquire(self) -> None:
        root = self.path.parent
        make_dirs(root)
        with writing(self.path, "opening the lock file", root):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"another syncd run holds {self.path} ({self.holder()})") from None
        except OSError as exc:
            os.close(fd)
            raise state_error(exc, self.path, "locking", root) from None
        try:
            self._stamp(fd)
        except OSError as exc:
            # Closing drops the flock: a run that failed must never keep the lock (a full disk would
            # otherwise wedge the daemon, every later run refused as if another one held it).
            os.close(fd)
            raise state_error(exc, self.path, "writing the lock file", root) from None
        self._fd = fd

    @staticmethod
    def _stamp(fd: int) -> None:
        """Who holds the lock, for a run refused by it; and 0600, should an older syncd have made the file."""
        with contextlib.suppress(PermissionError):  # not ours: opened through its group or other bits
            os.fchmod(fd, FILE_MODE)
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor drops the flock


class DatabaseLock:
    """GET_LOCK on a dedicated, unpooled connection; a no-op on SQLite (the single-host demo)."""

    def __init__(self, engine: Engine, name: str):
        self.engine = engine
        self.name = name
        self._conn: Connection | None = None

    @property
    def enabled(self) -> bool:
        return self.engine.dialect.name in ("mysql", "mariadb")

    def acquire(self) -> None:
        if not self.enabled:
            return
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot reach the database to take the run lock: {db_reason(exc)}") from None
        try:
            got = conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": self.name}).scalar()
            if got != 1:
                who = self._holder(conn)
                conn.close()
                raise LockedError(f"another syncd run holds the database lock {self.name!r} ({who})")
            # GET_LOCK ran in an implicit transaction; ending it keeps the session clean and holds the lock.
            conn.commit()
        except SQLAlchemyError as exc:
            conn.close()
            raise DatabaseError(f"cannot take the database lock {self.name!r}: {db_reason(exc)}") from None
        self._conn = conn

    def _holder(self, conn: Connection) -> str:
        holder_id = conn.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": self.name}).scalar()
        if holder_id is None:
            return "it was released just now; try again"
        host = None
        with contextlib.suppress(SQLAlchemyError):
            # Without the PROCESS privilege only the same user's sessions are visible; syncd's usually are.
            host = conn.execute(
                text("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = :i"), {"i": holder_id}
            ).scalar()
        return f"database connection {holder_id}" + (f" from {host}" if host else "")

    def verify(self) -> None:
        if not self.enabled:
            return
        if self._conn is None:
            raise LockedError(f"the database lock {self.name!r} is not held")
        try:
            mine = self._conn.execute(text("SELECT IS_USED_LOCK(:n) = CONNECTION_ID()"), {"n": self.name}).scalar()
            self._conn.commit()
        except SQLAlchemyError as exc:
            raise LockedError(
                f"lost the database lock {self.name!r} (its connection failed: {db_reason(exc)}); "
                "nothing more is applied in this run"
            ) from None
        if mine != 1:
            raise LockedError(f"lost the database lock {self.name!r}; nothing more is applied in this run")

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(SQLAlchemyError):
            conn.execute(text("DO RELEASE_LOCK(:n)"), {"n": self.name})
        with contextlib.suppress(SQLAlchemyError):
            conn.close()  # the server drops the lock with the session anyway

    def abort(self) -> None:
        """From another thread: cut the connection's socket so a blocked call returns at once."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                shutdown_dbapi(self._conn.connection.dbapi_connection)


def shutdown_dbapi(dbapi_conn: object) -> None:
    """Shut a PyMySQL connection's socket down; the thread blocked on it gets an error immediately."""
    sock = getattr(dbapi_conn, "_sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class RunLock:
    """The file lock, then the database lock; released in reverse order. A context manager."""

    def __init__(self, cfg: Config):
        self.file = FileLock(cfg.state.dir / LOCK_FILE)
        url = database_url(cfg.database)
        args: dict[str, object] = {}
        if url.get_backend_name() in ("mysql", "mariadb"):
            args = {"connect_timeout": 15, "read_timeout": 60, "write_timeout": 60}
        self._engine = create_engine(url, poolclass=NullPool, connect_args=args)
        self.db = DatabaseLock(self._engine, lock_name(url.database or ""))

    def acquire(self) -> RunLock:
        self.file.acquire()
        try:
            self.db.acquire()
        except BaseException:
            self.file.release()
            self._engine.dispose()
            raise
        log.debug("run lock taken: %s and %r", self.file.path, self.db.name)
        return self

    def verify(self) -> None:
        self.db.verify()

    def release(self) -> None:
        try:
            self.db.release()
        finally:
            self.file.release()
            self._engine.dispose()

    def abort(self) -> None:
        self.db.abort()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

