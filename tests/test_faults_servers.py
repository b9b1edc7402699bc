"""The SFTP server or the database goes away in the middle of a run.

The run fails cleanly: the exit code that names what failed (6 the source, 7 the database), within
the configured timeouts (not the 10-minute socket timeouts), nothing applied, the file left on the
source. When the server is back, the next run applies the file. The servers here are private to
these tests (a restartable MariaDB, an sshd of its own): the suite's shared ones never go down.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest

from bench.generate import Spec
from tests.faults import (
    Generated,
    assert_applied_once,
    connect,
    deliver,
    generate,
    ledger_of,
    query,
    reaped,
    snapshot,
    sshd_back,
    start,
)
from tests.ops_helpers import prepare_database, syncd, wait_for, write_config
from tests.rig.mariadb import MariaDB
from tests.rig.own_mariadb import OwnMariaDB, own_mariadb
from tests.rig.sshd import SshServer, running_sshd

pytestmark = pytest.mark.fault

SEED = 20261204
# A download must still be running when the server is killed or frozen, which the test notices
# from the first bytes in state.dir/downloads: 10,000 counterparties make a 30 MB file, several
# times the bytes paramiko can have in flight (its 8 MB window) when the server stops answering.
SFTP_COUNTERPARTIES = 10_000
# The database tests act once the apply has written rows; 2,000 counterparties (26,000 rows) keep
# it busy for a second or more, ample time to stop the server in the middle of the transaction.
DB_COUNTERPARTIES = 2000
TIMEOUTS = {"io_timeout": "2s", "connect_timeout": "2s", "min_age": "1s", "timezone": "Europe/Moscow"}
# "Within the configured timeouts": far below what an unbounded wait would take (a 30 MB download's
# own deadline is io_timeout + 240 s; MySQL's read_timeout is 600 s), with a wide margin for a
# machine shared with other test runs.
PROMPT = 45.0


def exports_dir(factory: pytest.TempPathFactory) -> Path:
    return factory.getbasetemp() / "fault-exports"


@pytest.fixture(scope="module")
def big_export(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    where = exports_dir(tmp_path_factory)
    where.mkdir(exist_ok=True)
    return generate(where, "settlements_20261125_100000_big.xml", Spec(SFTP_COUNTERPARTIES, 10, 2, base_seed=SEED))


@pytest.fixture(scope="module")
def db_export(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    where = exports_dir(tmp_path_factory)
    where.mkdir(exist_ok=True)
    return generate(where, "settlements_20261125_100000.xml", Spec(DB_COUNTERPARTIES, 10, 2, base_seed=SEED))


def downloading(state: Path) -> bool:
    """The first bytes of the file are in state.dir: the download is under way."""
    folder = state / "downloads"
    try:
        return any(p.name.endswith(".part") and p.stat().st_size > 0 for p in folder.iterdir())
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------- the SFTP server


@pytest.fixture
def own_sshd() -> Iterator[SshServer]:
    with running_sshd() as server:
        yield server


@pytest.mark.parametrize("stream", [False, True], ids=["download-first", "apply-while-downloading"])
@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_sftp_server_lost_mid_download_fails_the_run_cleanly_and_the_next_run_applies(
    own_sshd: SshServer, bitrix_db_url: str, big_export: Generated, tmp_path: Path, fault: str, stream: bool
) -> None:
    """sshd killed (the listener and its sessions: a crash or a reboot) or frozen (SIGSTOP of the
    session: a hung server, a black-holed link), once the first bytes arrived; with the file
    downloaded first and applied while it downloads (then the transaction is open meanwhile)."""
    folder = own_sshd.make_dir("lost")
    deliver(own_sshd, folder, big_export)
    state = tmp_path / "state"
    config = write_config(tmp_path / "syncd.toml", own_sshd, folder, bitrix_db_url, state,
                          source={**TIMEOUTS, "apply_while_downloading": stream}, bitrix={"timezone": "Europe/Moscow"})
    before = snapshot(bitrix_db_url)
    log = tmp_path / "run.log"
    proc = start("run-once", "--config", config, log=log)
    with reaped(proc):
        wait_for("the download to start", lambda: downloading(state) or proc.poll() is not None, 120,
                 every=0.005)
        assert proc.poll() is None, log.read_text()
        t0 = time.monotonic()
        if fault == "killed":
            own_sshd.kill()
            code = proc.wait(timeout=120)
        else:
            with own_sshd.frozen():
                code = proc.wait(timeout=120)
        took = time.monotonic() - t0
    out = log.read_text()
    assert code == 6, out
    assert "will retry next run" in out, out
    assert took < PROMPT, f"the run took {took:.1f}s to give up"
    assert snapshot(bitrix_db_url) == before
    assert ledger_of(bitrix_db_url, big_export.export_id) == []
    assert (folder / big_export.path.name).exists()
    assert list((state / "downloads").iterdir()) == []

    with sshd_back(own_sshd) if fault == "killed" else nullcontext():
        again = syncd("run-once", "--config", config, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_applied_once(bitrix_db_url, big_export.export_id)
    assert query(bitrix_db_url, "SELECT COUNT(*) FROM contractor_balance") == [(SFTP_COUNTERPARTIES,)]


# ---------------------------------------------------------------- the database


@pytest.fixture(scope="module")
def own_db() -> Iterator[OwnMariaDB]:
    with own_mariadb() as server:
        yield server


@pytest.fixture(scope="module")
def applied_once(own_db: OwnMariaDB, db_export: Generated, sshd: SshServer,
                 tmp_path_factory: pytest.TempPathFactory) -> str:
    """The checksum of the blocks after a clean apply of `db_export` on the private server."""
    tmp = tmp_path_factory.mktemp("db-reference")
    url = own_db.server.database_url(own_db.server.create_database("ref")) + "?charset=utf8mb4"
    prepare_database(url)
    folder = sshd.make_dir("dbref")
    try:
        deliver(sshd, folder, db_export)
        config = write_config(tmp / "syncd.toml", sshd, folder, url, tmp / "state", source=TIMEOUTS,
                              bitrix={"timezone": "Europe/Moscow"})
        result = syncd("run-once", "--config", config, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        return snapshot(url)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def when_applying(url: str, proc: subprocess.Popen[str], timeout: float = 300) -> None:
    """Return once the run is writing the file's rows (an INSERT into a block in the server's process
    list), or it ended. (Not INNODB_TRX: on this MariaDB it did not list the apply while it wrote.)"""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            def writing() -> bool:
                cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                            "WHERE DB = DATABASE() AND INFO LIKE 'INSERT INTO contractor%%'")
                row = cur.fetchone()
                return bool(row and row[0]) or proc.poll() is not None

            wait_for("the apply to write rows", writing, timeout, every=0.002)
    finally:
        conn.close()


@pytest.mark.parametrize("fault", ["stopped", "crashed", "restarted"])
def test_database_lost_mid_apply_fails_the_run_cleanly_and_the_next_run_applies(
    own_db: OwnMariaDB, applied_once: str, db_export: Generated, sshd: SshServer, remote_dir: Path,
    tmp_path: Path, fault: str
) -> None:
    """MariaDB stopped (SIGTERM: a clean shutdown), crashed (SIGKILL of mariadbd; InnoDB recovers
    at the next start) or restarted (stopped and started at once, as `systemctl restart` does)
    while the file's transaction has written rows: exit 7, no row of the file, and the run after
    the server is back applies it."""
    server: MariaDB = own_db.server
    url = server.database_url(server.create_database(fault)) + "?charset=utf8mb4"
    prepare_database(url)
    before = snapshot(url)
    deliver(sshd, remote_dir, db_export)
    state = tmp_path / "state"
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, url, state, source=TIMEOUTS,
                          bitrix={"timezone": "Europe/Moscow"})
    log = tmp_path / "run.log"
    proc = start("run-once", "--config", config, log=log)
    with reaped(proc):
        when_applying(url, proc)
        assert proc.poll() is None, log.read_text()
        t0 = time.monotonic()
        if fault == "crashed":
            own_db.crash()
        else:
            own_db.stop()
        if fault == "restarted":
            own_db.start()
        code = proc.wait(timeout=300)
        took = time.monotonic() - t0
    out = log.read_text()
    if not own_db.running:
        own_db.start()
    assert code == 7, out
    assert "failed, nothing was changed" in out and "Traceback" not in out, out
    assert took < PROMPT, f"the run took {took:.1f}s to give up"
    assert snapshot(url) == before
    assert "applied" not in ledger_of(url, db_export.export_id)
    assert (remote_dir / db_export.path.name).exists()

    again = syncd("run-once", "--config", config, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert snapshot(url) == applied_once
    assert_applied_once(url, db_export.export_id)
    assert not (remote_dir / db_export.path.name).exists()


def test_the_rig_can_restart_its_database(own_db: OwnMariaDB) -> None:
    """The fault tests above rely on the private server coming back on the same port with its data."""
    name = own_db.server.create_database("restart")
    with own_db.server.admin() as cur:
        cur.execute(f"CREATE TABLE `{name}`.t (x INT) ENGINE=InnoDB")
        cur.execute(f"INSERT INTO `{name}`.t VALUES (1)")
    own_db.crash()
    assert not own_db.running
    own_db.start()
    with own_db.server.admin() as cur:
        cur.execute(f"SELECT x FROM `{name}`.t")
        assert cur.fetchall() == ((1,),)
    own_db.server.drop_database(name)
