"""The database grants docs/security.md promises: runs need only SELECT, INSERT, UPDATE, DELETE; migrate more."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.exports import counterparty, guid, xml_export
from tests.ops_helpers import sql, syncd
from tests.rig.mariadb import MariaDB

RUN_GRANTS = "SELECT, INSERT, UPDATE, DELETE"
PASSWORD = "run-only-Pw-7"


@pytest.fixture
def run_user(mariadb: MariaDB) -> Iterator[str]:
    """A database user that gets only the run grants (on the databases a test grants them on)."""
    user = f"syncd_run_{os.getpid()}"
    with mariadb.admin() as cur:
        for host in ("%", "localhost", "127.0.0.1"):
            cur.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{PASSWORD}'")
    try:
        yield user
    finally:
        with mariadb.admin() as cur:
            for host in ("%", "localhost", "127.0.0.1"):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")


def _grant_run(mariadb: MariaDB, user: str, database: str) -> None:
    with mariadb.admin() as cur:
        for host in ("%", "localhost", "127.0.0.1"):
            cur.execute(f"GRANT {RUN_GRANTS} ON `{database}`.* TO '{user}'@'{host}'")


def _config(tmp_path: Path, url: str) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[source]\ntype = "local"\npath = "{inbox}"\nmin_age = "0s"\n\n'
        f'[database]\nurl = "{url}"\npassword_env = "SYNCD_TEST_RUN_PASSWORD"\n\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n', encoding="utf-8")
    return path


def _as(user: str, root_url: str) -> str:
    return make_url(root_url).set(username=user, password=None).render_as_string(hide_password=False)


def test_a_run_needs_only_select_insert_update_delete(mariadb: MariaDB, bitrix_db_url: str, run_user: str,
                                                      tmp_path: Path) -> None:
    database = make_url(bitrix_db_url).database
    assert database is not None
    _grant_run(mariadb, run_user, database)
    config = _config(tmp_path, _as(run_user, bitrix_db_url))
    export = tmp_path / "inbox" / "settlements_1.xml"
    export.write_bytes(xml_export([counterparty(1, payments=2, documents=1), counterparty(2)]))
    os.utime(export, (0, 0))

    done = syncd("run-once", "-c", config, extra_env={"SYNCD_TEST_RUN_PASSWORD": PASSWORD})

    assert done.returncode == 0, done.stdout + done.stderr
    assert "applied" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    debt = f"SELECT UF_DEBT FROM contractor_balance WHERE UF_CONTRACTOR_XML_ID = '{guid(1)}'"
    assert sql(bitrix_db_url, debt) == 1000
    assert sql(bitrix_db_url, "SELECT COUNT(*) FROM contractor_payments") == 2
    assert sql(bitrix_db_url, "SELECT exit_code FROM syncd_runs") == 0
    # `syncd status` reads with the same grants.
    status = syncd("status", "-c", config, extra_env={"SYNCD_TEST_RUN_PASSWORD": PASSWORD})
    assert status.returncode == 0, status.stdout + status.stderr


def test_migrate_with_only_the_run_grants_says_what_it_lacks(mariadb: MariaDB, db_url: str, run_user: str,
                                                             tmp_path: Path) -> None:
    from syncd.bitrix import core
    from syncd.config import from_mapping
    from syncd.plumbing.db import make_engine

    cfg = from_mapping({"source": {"type": "local", "path": "/"}, "database": {"url": db_url}})
    engine = make_engine(cfg.database)
    core.create_stand_in_core(engine)  # a Bitrix site, not migrated yet
    engine.dispose()
    database = make_url(db_url).database
    assert database is not None
    _grant_run(mariadb, run_user, database)
    config = _config(tmp_path, _as(run_user, db_url))

    done = syncd("migrate", "-c", config, extra_env={"SYNCD_TEST_RUN_PASSWORD": PASSWORD})

    assert done.returncode == 7, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "CREATE command denied" in done.stderr
    assert "syncd migrate needs CREATE, ALTER and INDEX" in done.stderr
    assert "docs/security.md" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert sql(db_url, f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{database}' "
                       "AND TABLE_NAME LIKE 'syncd%'") == 0

    # With CREATE, ALTER and INDEX besides them it goes through.
    with mariadb.admin() as cur:
        for host in ("%", "localhost", "127.0.0.1"):
            cur.execute(f"GRANT CREATE, ALTER, INDEX ON `{database}`.* TO '{run_user}'@'{host}'")
    done = syncd("migrate", "-c", config, extra_env={"SYNCD_TEST_RUN_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stdout + done.stderr
    assert sql(db_url, f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{database}' "
                       "AND TABLE_NAME = 'contractor_payments'") == 1
