"""Fixtures shared by the suite: real servers started once per session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig.mariadb import MariaDB, running_mariadb
from tests.rig.sshd import RigUnavailable, SshServer, check_can_run, running_sshd


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    with running_mariadb() as server:
        yield server


@pytest.fixture
def db_url(mariadb: MariaDB) -> Iterator[str]:
    """A fresh, empty database on the suite's MariaDB; dropped after the test."""
    name = mariadb.create_database()
    try:
        yield mariadb.database_url(name) + "?charset=utf8mb4"
    finally:
        mariadb.drop_database(name)


# ---------------------------------------------------------------- SFTP rig (tests/rig/sshd.py)

@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    """A private sshd shared by the session; needs root (it logs in as a dedicated user)."""
    try:
        check_can_run()
    except RigUnavailable as exc:
        pytest.fail(f"cannot start the test sshd: {exc}", pytrace=False)
    with running_sshd() as server:
        yield server


@pytest.fixture
def remote_dir(sshd: SshServer) -> Iterator[Path]:
    """A fresh empty folder in the login user's home, served by `sshd`; removed after the test."""
    d = sshd.make_dir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- a migrated Bitrix database


@pytest.fixture(scope="session")
def bitrix_template(mariadb: MariaDB) -> Iterator[str]:
    """A database with the stand-in Bitrix core, syncd's tables and the three blocks, migrated once."""
    from syncd.bitrix import core
    from syncd.bitrix.migrate import migrate, upgrade_own_tables
    from syncd.config import from_mapping
    from syncd.plumbing.db import make_engine

    name = mariadb.create_database("template")
    cfg = from_mapping({"source": {"type": "local", "path": "/"}, "database": {"url": mariadb.database_url(name)}})
    engine = make_engine(cfg.database)
    core.create_stand_in_core(engine)
    upgrade_own_tables(engine)
    migrate(engine, cfg.bitrix)
    engine.dispose()
    yield name
    mariadb.drop_database(name)


@pytest.fixture
def bitrix_db_url(mariadb: MariaDB, bitrix_template: str) -> Iterator[str]:
    """A fresh copy of the migrated Bitrix database (default block names); dropped after the test."""
    name = mariadb.clone_database(bitrix_template)
    try:
        yield mariadb.database_url(name) + "?charset=utf8mb4"
    finally:
        mariadb.drop_database(name)
