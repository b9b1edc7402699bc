"""The run lock against the suite's MariaDB and real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from syncd.config import Config, from_mapping
from syncd.plumbing.lock import FileLock, LockedError, RunLock, lock_name


def config(db_url: str, state: Path) -> Config:
    return from_mapping(
        {"source": {"type": "local", "path": str(state)}, "database": {"url": db_url}, "state": {"dir": str(state)}}
    )


def test_second_lock_is_refused_and_says_who_holds_it(db_url: str, tmp_path: Path) -> None:
    cfg = config(db_url, tmp_path)
    with RunLock(cfg), pytest.raises(LockedError, match=rf"syncd\.lock \(pid {os.getpid()} on [^ ]+ since \d{{4}}-"):
        RunLock(cfg).acquire()
    with RunLock(cfg):  # released: free again
        pass


def test_database_lock_stops_another_host(db_url: str, tmp_path: Path) -> None:
    # Two state folders stand for two hosts: only GET_LOCK is shared.
    first = RunLock(config(db_url, tmp_path / "a")).acquire()
    try:
        with pytest.raises(LockedError,
                           match=r"database lock 'syncd:t_\d+_\d+' \(database connection \d+ from [\w.:-]+\)"):
            RunLock(config(db_url, tmp_path / "b")).acquire()
        assert not (tmp_path / "b" / "syncd.lock").read_text()  # the file lock it took was let go
    finally:
        first.release()
    RunLock(config(db_url, tmp_path / "b")).acquire().release()


def test_verify_notices_a_lost_lock(db_url: str, tmp_path: Path) -> None:
    lock = RunLock(config(db_url, tmp_path)).acquire()
    try:
        lock.verify()
        engine = create_engine(db_url)
        with engine.connect() as conn:
            holder = conn.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": lock.db.name}).scalar()
            conn.execute(text(f"KILL CONNECTION {int(holder)}"))
        engine.dispose()
        with pytest.raises(LockedError, match="lost the database lock"):
            lock.verify()
    finally:
        lock.release()


def test_file_lock_held_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "syncd.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from syncd.plumbing.lock import FileLock
            FileLock(Path({str(path)!r})).acquire()
            print("locked", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"pid {holder.pid} on "):
            FileLock(path).acquire()
    finally:
        holder.communicate("")
    FileLock(path).acquire()  # the kernel dropped it with the process


def test_sqlite_has_no_named_lock(tmp_path: Path) -> None:
    cfg = config(f"sqlite:///{tmp_path / 'demo.db'}", tmp_path)
    with RunLock(cfg) as lock:
        lock.verify()  # nothing to check on SQLite
        with pytest.raises(LockedError, match=f"another syncd run holds .*syncd.lock .*pid {os.getpid()}"):
            RunLock(cfg).acquire()  # the file lock still works


def test_long_database_names_fit_mysql_limit() -> None:
    assert lock_name("bitrix") == "syncd:bitrix"
    assert len(lock_name("x" * 64)) <= 64


def test_every_database_name_gives_a_lock_name_mysql_takes() -> None:
    for n in range(1, 80):
        name = lock_name("x" * n)
        assert len(name) <= 64, n
        assert name == f"syncd:{'x' * n}" if n <= 58 else name.startswith("syncd:"), n


@pytest.mark.parametrize("other_takes_it", [False, True])
def test_verify_notices_a_lock_released_on_a_live_connection(db_url: str, tmp_path: Path,
                                                             other_takes_it: bool) -> None:
    lock = RunLock(config(db_url, tmp_path)).acquire()
    engine = create_engine(db_url)
    try:
        conn = lock.db._conn
        assert conn is not None
        conn.execute(text("DO RELEASE_LOCK(:n)"), {"n": lock.db.name})  # the connection itself stays up
        with engine.connect() as other:
            if other_takes_it:
                assert other.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": lock.db.name}).scalar() == 1
            with pytest.raises(LockedError, match=r"lost the database lock .*nothing more is applied in this run"):
                lock.verify()
    finally:
        engine.dispose()
        lock.release()


def test_a_state_dir_that_does_not_exist_yet_is_made(db_url: str, tmp_path: Path) -> None:
    state = tmp_path / "var" / "lib" / "syncd" / "shop1"
    with RunLock(config(db_url, state)):
        assert (state / "syncd.lock").read_text().startswith(f"pid {os.getpid()} on ")
