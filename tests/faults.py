"""Helpers for the fault tests (`-m fault`): generated exports, a checksum of the blocks, syncd as a
process killed at a chosen moment, and the counts the suite and `make faults` use.

The suite runs small seeded counts; `make faults` sets SYNCD_FAULTS=full for the bigger ones. A test
takes its count from `count(suite, full)`, so both runs are the same test with a different number.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
from sqlalchemy.engine import make_url

from bench.generate import Spec, write_export
from tests.ops_helpers import env
from tests.rig.sshd import SSHD, SshServer, _wait_listening, descendants, set_age

BLOCKS = ("contractor_balance", "contractor_payments", "contractor_documents")
# The digests syncd keeps per counterparty belong to the same transaction as the rows: a digest
# without its rows would make the next export skip a counterparty that was never written.
STATE = "syncd_counterparty_state"


def full_run() -> bool:
    return os.environ.get("SYNCD_FAULTS", "") == "full"


def count(suite: int, full: int) -> int:
    """How many fault runs: `suite` in `make test`, `full` in `make faults` (SYNCD_FAULTS=full)."""
    return full if full_run() else suite


# ---------------------------------------------------------------- exports


@dataclass(frozen=True)
class Generated:
    path: Path
    export_id: str
    rows: int


def generate(where: Path, name: str, spec: Spec) -> Generated:
    """An export from bench.generate, written once into `where` (a session folder) and reused."""
    path = where / name
    rows_file = where / (name + ".rows")
    if not rows_file.exists():
        n, n_pay, n_doc = write_export(spec, "xml", path)
        rows_file.write_text(str(n + n_pay + n_doc))
    return Generated(path, spec.export_id, int(rows_file.read_text()))


def deliver(server: SshServer, folder: Path, export: Generated, name: str | None = None) -> Path:
    """Put an export on the SFTP server as 1C leaves it: complete, the login user's, old enough."""
    target = folder / (name or export.path.name)
    shutil.copyfile(export.path, target)
    os.chown(target, server.uid, server.gid)
    set_age(target, 600)
    return target


# ---------------------------------------------------------------- what the blocks hold


def connect(db_url: str) -> pymysql.Connection[Any]:
    u = make_url(db_url)
    return pymysql.connect(host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username or "root",
                           password=u.password or "", database=u.database, charset="utf8mb4", autocommit=True)


def snapshot(db_url: str) -> str:
    """A checksum of what the three blocks and the digests hold, without row ids (AUTO_INCREMENT
    moves on in a rolled-back transaction) or the digests' check times (the wall clock)."""
    digest = hashlib.sha256()
    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            for table in (*BLOCKS, STATE):
                cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                            "AND TABLE_NAME = %s AND COLUMN_NAME NOT IN ('ID', 'checked_at') "
                            "ORDER BY ORDINAL_POSITION", (table,))
                columns = ", ".join(f"`{c}`" for (c,) in cur.fetchall())
                cur.execute(f"SELECT {columns} FROM `{table}`")
                rows = sorted(repr(r) for r in cur.fetchall())
                digest.update(f"{table}:{len(rows)}\n".encode())
                for r in rows:
                    digest.update(r.encode() + b"\n")
    finally:
        conn.close()
    return digest.hexdigest()


def query(db_url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def ledger_of(db_url: str, export_id: str) -> list[str]:
    """The statuses the ledger holds for one export, in order."""
    return [s for (s,) in query(db_url, "SELECT status FROM syncd_imports WHERE export_id = %s ORDER BY id",
                                export_id)]


def assert_applied_once(db_url: str, export_id: str) -> None:
    """Exactly one `applied` entry; anything else only a `duplicate` of a copy already applied (a run
    killed between its commit and moving the file leaves it on the source, and the next one finds it)."""
    statuses = ledger_of(db_url, export_id)
    assert statuses.count("applied") == 1, statuses
    assert set(statuses) <= {"applied", "duplicate"}, statuses
    assert statuses[0] == "applied", statuses


# ---------------------------------------------------------------- syncd as a process


def start(*args: str | Path, log: Path | None = None) -> subprocess.Popen[str]:
    out = log.open("a") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, "-m", "syncd", *map(str, args)], stdout=out, stderr=out,
                                text=True, env=env(), start_new_session=True)
    finally:
        if log is not None and not isinstance(out, int):
            out.close()


def kill_after(proc: subprocess.Popen[str], seconds: float) -> bool:
    """SIGKILL `proc` `seconds` after now; False when it had already ended by itself."""
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


@contextmanager
def reaped(*procs: subprocess.Popen[str]) -> Iterator[None]:
    """Kill whatever is still running when the block ends (a failing assertion must not leave runners)."""
    try:
        yield
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()



@contextmanager
def sshd_back(server: SshServer) -> Iterator[None]:
    """A killed rig sshd up again as it was: its config, port, host key and authorized key; stopped
    (with its sessions) when the block ends, since the rig only stops the process it started."""
    with server.log.open("ab") as out:
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(server.workdir / "sshd_config")],
                                stdout=out, stderr=out)
    server.process = proc
    try:
        _wait_listening(server.port, proc, server.log)
        yield
    finally:
        for pid in descendants(proc.pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
