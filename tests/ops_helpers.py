"""Helpers for the operations tests: a migrated database, an SFTP config file, `syncd` as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, create_engine, select, text

from syncd import ledger
from syncd.bitrix import core
from syncd.bitrix.migrate import migrate, upgrade_own_tables
from syncd.config import from_mapping
from syncd.plumbing.db import make_engine
from tests.rig.mariadb import free_port
from tests.rig.sshd import SshServer


def prepare_database(db_url: str) -> None:
    """The stand-in Bitrix core, syncd's tables and the three HL-blocks."""
    cfg = from_mapping({"source": {"type": "local", "path": "/"}, "database": {"url": db_url}})
    engine = make_engine(cfg.database)
    try:
        core.create_stand_in_core(engine)
        upgrade_own_tables(engine)
        migrate(engine, cfg.bitrix)
    finally:
        engine.dispose()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    path: Path, sshd: SshServer, remote_dir: Path, db_url: str, state: Path, **sections: Mapping[str, Any]
) -> Path:
    data: dict[str, dict[str, Any]] = {
        "source": {
            "type": "sftp", "host": sshd.host, "port": sshd.port, "username": sshd.username,
            "private_key": str(sshd.client_key), "known_hosts": str(sshd.known_hosts),
            "remote_dir": str(remote_dir.relative_to(sshd.home)), "min_age": "30s",
        },
        "database": {"url": db_url},
        "state": {"dir": str(state)},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    lines = []
    for name, values in data.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SYNCD_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                                                           "WATCHDOG_PID", "JOURNAL_STREAM")}
    return {**base, **extra}


def syncd(*args: str | Path, extra_env: Mapping[str, str] | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env(**(extra_env or {})))


def _rows(db_url: str, table: Table) -> list[dict[str, Any]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]
    finally:
        engine.dispose()


def imports(db_url: str) -> list[dict[str, Any]]:
    return _rows(db_url, ledger.imports)


def runs(db_url: str) -> list[dict[str, Any]]:
    return _rows(db_url, ledger.runs)


def sql(db_url: str, statement: str) -> Any:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement))
            return result.scalar() if result.returns_rows else result.rowcount
    finally:
        engine.dispose()


def debts(db_url: str) -> dict[str, float]:
    """Each counterparty's UF_DEBT in ContractorBalance, by its 1C GUID."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT UF_CONTRACTOR_XML_ID, UF_DEBT FROM contractor_balance")).all())
    finally:
        engine.dispose()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


@contextmanager
def row_locked(db_url: str, xml_id: str) -> Iterator[Connection]:
    """Another session holds counterparty `xml_id`'s balance row: a run that writes it waits here."""
    engine = create_engine(db_url)
    conn = engine.connect()
    try:
        conn.execute(text("SELECT ID FROM contractor_balance WHERE UF_CONTRACTOR_XML_ID = :g FOR UPDATE"),
                     {"g": xml_id})
        yield conn
    finally:
        conn.rollback()
        conn.close()
        engine.dispose()


def waiting_for_row_lock(db_url: str) -> bool:
    """Whether a session of this database waits for a row lock (the run reached the locked row)."""
    return bool(sql(db_url, "SELECT COUNT(*) FROM information_schema.innodb_trx t "
                            "JOIN information_schema.processlist p ON p.ID = t.trx_mysql_thread_id "
                            "WHERE t.trx_state = 'LOCK WAIT' AND p.DB = DATABASE()"))


__all__ = ["free_port"]
