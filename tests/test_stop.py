"""`syncd run-once` stopped by SIGTERM (a timer's `systemctl stop`, a shutdown, Ctrl-C) keeps the daemon's
promise: no new file is taken, the current one finishes and the run exits 0; a file that cannot finish
within the grace (30 s) is cut and its transaction rolls back.

The apply is held in the middle of its transaction by another session's LOCK TABLES on one of the
blocks, so the signal arrives while the file is being written, whatever the machine's speed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text

from tests.exports import counterparty, xml_export
from tests.ops_helpers import env, imports, prepare_database, runs, sql, syncd, wait_for, write_config
from tests.rig.sshd import SshServer

N = 2000


@pytest.fixture
def config(db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path) -> Path:
    prepare_database(db_url)
    path = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state")
    # A first, empty run records the links: the runs below do not relink, so they reach the apply.
    assert syncd("run-once", "--config", path).returncode == 0
    sshd.put(remote_dir / "settlements_1.xml",
             xml_export([counterparty(n) for n in range(1, N + 1)], generated_at="2026-11-25T10:00:00"))
    sshd.put(remote_dir / "settlements_2.xml",
             xml_export([counterparty(n) for n in range(1, N + 1)], generated_at="2026-11-25T11:00:00"))
    return path


@pytest.fixture
def blocker(db_url: str) -> Iterator[Connection]:
    """Another session holding the documents block: an apply that reaches it waits, mid-transaction."""
    conn = create_engine(db_url).connect()
    conn.execute(text("LOCK TABLES contractor_documents WRITE"))
    try:
        yield conn
    finally:
        conn.execute(text("UNLOCK TABLES"))
        conn.close()


def waiting_for_the_block(db_url: str) -> bool:
    database = db_url.rsplit("/", 1)[1].split("?")[0]
    return bool(sql(db_url, "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                            f"WHERE DB = '{database}' AND STATE LIKE 'Waiting for table%lock'"))


def start(config: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    err = tmp_path / "stderr.txt"
    with err.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "syncd", "run-once", "--config", str(config)],
                                stdout=subprocess.PIPE, stderr=out, text=True, env=env())
    return proc, err


def test_sigterm_mid_file_finishes_it_takes_no_other_and_exits_0(
    config: Path, blocker: Connection, db_url: str, remote_dir: Path, tmp_path: Path
) -> None:
    proc, err = start(config, tmp_path)
    try:
        wait_for("the apply to wait for the locked block", lambda: waiting_for_the_block(db_url))
        proc.send_signal(signal.SIGTERM)
        wait_for("the stop to be noted", lambda: "SIGTERM" in err.read_text())
        blocker.execute(text("UNLOCK TABLES"))  # the file can finish now
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err.read_text()  # before: -15, killed, the file rolled back
    assert "applied    settlements_1.xml" in out and "Traceback" not in err.read_text()
    assert "no new file is taken" in err.read_text()
    # The file is whole in the blocks and the ledger agrees; the next one waits on the source.
    [entry] = imports(db_url)
    assert (entry["file_name"], entry["status"], entry["balance_inserted"]) == ("settlements_1.xml", "applied", N)
    assert sql(db_url, "SELECT COUNT(*) FROM contractor_balance") == N
    assert (remote_dir / "settlements_2.xml").exists() and not (remote_dir / "settlements_1.xml").exists()
    assert runs(db_url)[-1]["exit_code"] == 0


def test_sigterm_when_the_file_cannot_finish_cuts_it_after_the_grace_and_rolls_it_back(
    config: Path, blocker: Connection, db_url: str, remote_dir: Path, tmp_path: Path
) -> None:
    proc, err = start(config, tmp_path)
    try:
        wait_for("the apply to wait for the locked block", lambda: waiting_for_the_block(db_url))
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)  # STOP_GRACE is 30 s
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err.read_text()
    assert "cut" in err.read_text() and "rolled back" in err.read_text()
    blocker.execute(text("UNLOCK TABLES"))
    wait_for("the cut session to be gone", lambda: not waiting_for_the_block(db_url))
    assert not imports(db_url)
    assert sql(db_url, "SELECT COUNT(*) FROM contractor_balance") == 0
    assert (remote_dir / "settlements_1.xml").exists() and (remote_dir / "settlements_2.xml").exists()
