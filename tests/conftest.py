"""Fixtures shared by the suite: real servers started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rig.mariadb import MariaDB, running_mariadb


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
