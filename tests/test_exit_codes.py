"""The README's exit codes, each from a real `syncd run-once` process, and their order when several apply.

README: "When several apply, the first of 7, 6, 4, 5 wins." Every pair of those four is a test here, each
run made so that both conditions really happen in it (the printed lines show both).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from syncd.bitrix import core
from tests.exports import counterparty, guid, xml_export
from tests.ops_helpers import env, imports, runs, syncd, write_config
from tests.rig.sshd import SshServer

BROKEN = b"<SettlementsExport formatVersion='1'>broken"


@pytest.fixture
def config(bitrix_db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path) -> Path:
    return write_config(tmp_path / "syncd.toml", sshd, remote_dir, bitrix_db_url, tmp_path / "state")


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return syncd("run-once", "--config", config, *args)


def unreachable_source(config: Path, sshd: SshServer) -> Path:
    """The same config with the SFTP server's port closed (nothing listens on port 1)."""
    other = config.with_name("unreachable.toml")
    other.write_text(config.read_text().replace(f"port = {sshd.port}", "port = 1"))
    return other


def make_relink_fail(db_url: str) -> None:
    """A user now claims counterparty 1 (the links changed), and the database refuses to move any row to
    another user: the relink at the start of the next run fails, while other writes still work."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            core.add_user(conn, login="late-registrant", fields={"UF_1C_CONTRACTOR_ID": guid(1)})
            conn.execute(text(
                "CREATE TRIGGER refuse_relink BEFORE UPDATE ON contractor_balance FOR EACH ROW "
                "IF NOT (NEW.UF_BITRIX_USER_ID <=> OLD.UF_BITRIX_USER_ID) THEN "
                "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no relink today'; END IF"))
    finally:
        engine.dispose()


def ten(generated_at: str = "2026-11-25T10:00:00", first: int = 1) -> bytes:
    return xml_export([counterparty(n) for n in range(first, 11)], generated_at=generated_at)


def block_moves_to_processed(remote_dir: Path, sshd: SshServer) -> None:
    """A plain file where `processed/` should be: moving an applied file off the source fails (exit 6)."""
    sshd.put(remote_dir / "processed", b"not a folder")


# ---------------------------------------------------------------- each code from a real run


def test_exit_0_everything_applied(config: Path, sshd: SshServer, remote_dir: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", ten())
    done = run(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("summary: 1 applied, 0 duplicate")


def test_exit_1_internal_error_is_one_line_asking_for_a_report(config: Path) -> None:
    # Only a bug gives exit 1: this process plants one (the run raises ZeroDivisionError) and runs the real CLI.
    bug = ("import sys, syncd.run.runner as r\n"
           "r.Runner.run = lambda self: 1 / 0\n"
           "from syncd.cli import main\n"
           "sys.argv = ['syncd', 'run-once', '--config', sys.argv[1]]\n"
           "main()\n")
    done = subprocess.run([sys.executable, "-c", bug, str(config)], capture_output=True, text=True, timeout=120,
                          env=env())
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == "syncd: internal error: ZeroDivisionError: division by zero (please report it)"


def test_exit_2_wrong_usage(config: Path) -> None:
    done = run(config, "--no-such-option")
    assert done.returncode == 2
    assert "No such option '--no-such-option'" in done.stderr


def test_exit_3_bad_configuration_names_the_key(config: Path) -> None:
    config.write_text(config.read_text().replace('min_age = "30s"', 'min_age = "soon"'))
    done = run(config)
    assert done.returncode == 3
    assert "source.min_age" in done.stderr and "Traceback" not in done.stderr


def test_exit_4_rejected(config: Path, sshd: SshServer, remote_dir: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", BROKEN)
    done = run(config)
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stdout.startswith("rejected   settlements_1.xml")


def test_exit_5_held(config: Path, sshd: SshServer, remote_dir: Path, bitrix_db_url: str) -> None:
    sshd.put(remote_dir / "settlements_1.xml", ten())
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", xml_export([counterparty(1)], generated_at="2026-11-25T11:00:00"))
    done = run(config)
    assert done.returncode == 5, done.stdout + done.stderr
    assert done.stdout.startswith("held       settlements_2.xml")


def test_exit_6_source_unreachable(config: Path, sshd: SshServer) -> None:
    done = run(unreachable_source(config, sshd))
    assert done.returncode == 6, done.stdout + done.stderr
    assert "syncd: error:" in done.stderr and "Traceback" not in done.stderr


def test_exit_7_database_unreachable(config: Path, bitrix_db_url: str) -> None:
    url = bitrix_db_url.split("@", 1)[1].split("/", 1)[0]  # host:port
    config.write_text(config.read_text().replace(url, "127.0.0.1:1"))
    done = run(config)
    assert done.returncode == 7, done.stdout + done.stderr
    assert "cannot reach the database" in done.stderr


def test_exit_7_database_not_migrated(db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state")
    done = run(config)
    assert done.returncode == 7, done.stdout + done.stderr
    assert "the database is not ready" in done.stderr and "(run `syncd migrate`)" in done.stderr


def test_exit_8_another_run_holds_the_lock(config: Path, sshd: SshServer, remote_dir: Path,
                                           bitrix_db_url: str) -> None:
    from syncd import config as config_mod
    from syncd.plumbing.lock import RunLock

    sshd.put(remote_dir / "settlements_1.xml", ten())
    with RunLock(config_mod.load(config)):
        done = run(config)
    assert done.returncode == 8
    assert "another syncd run holds" in done.stderr and f"pid {os.getpid()}" in done.stderr
    assert imports(bitrix_db_url) == []


# ---------------------------------------------------------------- the order: 7 > 6 > 4 > 5


def test_7_wins_over_6_relink_failed_and_source_unreachable(config: Path, sshd: SshServer, remote_dir: Path,
                                                             bitrix_db_url: str) -> None:
    sshd.put(remote_dir / "settlements_1.xml", ten())
    assert run(config).returncode == 0
    make_relink_fail(bitrix_db_url)

    done = run(unreachable_source(config, sshd))

    assert done.returncode == 7, done.stdout + done.stderr
    assert "relinking the blocks to changed links failed" in done.stdout + done.stderr
    assert runs(bitrix_db_url)[-1]["exit_code"] == 7


def test_7_wins_over_4_relink_failed_and_a_file_rejected(config: Path, sshd: SshServer, remote_dir: Path,
                                                          bitrix_db_url: str) -> None:
    sshd.put(remote_dir / "settlements_1.xml", ten())
    assert run(config).returncode == 0
    make_relink_fail(bitrix_db_url)
    sshd.put(remote_dir / "settlements_2.xml", BROKEN)

    done = run(config)

    assert done.returncode == 7, done.stdout + done.stderr
    assert done.stdout.startswith("rejected   settlements_2.xml")
    assert "relinking the blocks to changed links failed" in done.stderr


def test_7_wins_over_5_relink_failed_and_a_file_held(config: Path, sshd: SshServer, remote_dir: Path,
                                                      bitrix_db_url: str) -> None:
    sshd.put(remote_dir / "settlements_1.xml", ten())
    assert run(config).returncode == 0
    make_relink_fail(bitrix_db_url)
    # Lists 5..10, not counterparty 1 (whose user changed): 4 of 10 would lose their debt, so it is held.
    sshd.put(remote_dir / "settlements_2.xml", ten("2026-11-25T11:00:00", first=5))

    done = run(config)

    assert done.returncode == 7, done.stdout + done.stderr
    assert done.stdout.startswith("held       settlements_2.xml")
    assert "relinking the blocks to changed links failed" in done.stderr


def test_6_wins_over_4_a_file_rejected_then_the_source_fails(config: Path, sshd: SshServer,
                                                              remote_dir: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", BROKEN)
    sshd.put(remote_dir / "settlements_2.xml", ten())
    block_moves_to_processed(remote_dir, sshd)

    done = run(config)

    assert done.returncode == 6, done.stdout + done.stderr
    assert done.stdout.startswith("rejected   settlements_1.xml")
    assert "processed" in done.stderr


def test_6_wins_over_5_a_file_held_then_the_source_fails(config: Path, sshd: SshServer, remote_dir: Path,
                                                          bitrix_db_url: str) -> None:
    sshd.put(remote_dir / "settlements_1.xml", ten())
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", xml_export([counterparty(1)], generated_at="2026-11-25T11:00:00"))
    sshd.put(remote_dir / "settlements_3.xml", ten("2026-11-25T12:00:00"))
    (remote_dir / "processed").rename(remote_dir / "old")
    block_moves_to_processed(remote_dir, sshd)

    done = run(config)

    assert done.returncode == 6, done.stdout + done.stderr
    assert done.stdout.startswith("held       settlements_2.xml")
    assert "processed" in done.stderr


def test_4_wins_over_5_a_file_rejected_and_one_held(config: Path, sshd: SshServer, remote_dir: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", ten())
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", xml_export([counterparty(1)], generated_at="2026-11-25T11:00:00"))
    sshd.put(remote_dir / "settlements_3.xml", BROKEN)

    done = run(config)

    assert done.returncode == 4, done.stdout + done.stderr
    lines = sorted(line.split()[0] for line in done.stdout.splitlines()[:-1])
    assert lines == ["held", "rejected"]


def test_exit_7_a_database_error_while_applying_leaves_the_file_for_the_next_run(
        config: Path, sshd: SshServer, remote_dir: Path, bitrix_db_url: str) -> None:
    engine = create_engine(bitrix_db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse_rows BEFORE INSERT ON contractor_balance FOR EACH ROW "
                          "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no rows today'"))
    engine.dispose()
    sshd.put(remote_dir / "settlements_1.xml", ten())

    done = run(config)

    assert done.returncode == 7, done.stdout + done.stderr
    assert "applying settlements_1.xml failed, nothing was changed: " in done.stderr
    assert "no rows today" in done.stderr
    assert (remote_dir / "settlements_1.xml").exists() and imports(bitrix_db_url) == []
