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
