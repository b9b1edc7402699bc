"""`syncd daemon` as systemd runs it: a real process, a 1-second interval, the suite's sshd and MariaDB."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from syncd import config as config_mod
from syncd.plumbing.lock import LockedError, RunLock
from tests.exports import counterparty, guid, xml_export
from tests.ops_helpers import (
    debts,
    env,
    free_port,
    imports,
    prepare_database,
    row_locked,
    runs,
    wait_for,
    waiting_for_row_lock,
    write_config,
)
from tests.rig.mariadb import MariaDB
from tests.rig.sshd import SshServer

FAST = {"interval": "1s", "run_timeout": "30s", "misfire_grace": "30s"}


class Daemon:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path, notify: socket.socket):
        self.proc = proc
        self.log = log
        self.notify = notify
        self.messages: list[str] = []
        # Read as systemd does, all the time: the datagram queue is short (net.unix.max_dgram_qlen).
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        self.notify.settimeout(0.2)
        while True:
            try:
                self.messages.append(self.notify.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float = 30) -> None:
        wait_for(f"{needle!r} in the daemon's log", lambda: needle in self.text() or self._dead(), timeout)
        assert needle in self.text(), self.text()

    def _dead(self) -> bool:
        return self.proc.poll() is not None

    def received(self) -> list[str]:
        return list(self.messages)

    def wait_notify(self, prefix: str, timeout: float = 30) -> str:
        def seen() -> str | None:
            return next((m for m in self.received() if m.startswith(prefix)), None)

        return str(wait_for(f"sd_notify {prefix!r}", seen, timeout))


# A test hook, not a setting: the daemon's stop grace (README: 30 s) made short so a test can outlast it.
SHORT_GRACE = ("import sys, syncd.daemon\n"
               "syncd.daemon.STOP_GRACE = float(sys.argv.pop(1))\n"
               "from syncd.cli import main\n"
               "main()\n")


@contextmanager
def daemon(config: Path, tmp_path: Path, *args: str, grace: float | None = None) -> Iterator[Daemon]:
    sock_path = tmp_path / "notify.sock"
    log = tmp_path / "daemon.log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(sock_path))
        with log.open("wb") as out:
            start = ["-m", "syncd"] if grace is None else ["-c", SHORT_GRACE, str(grace)]
            proc = subprocess.Popen(
                [sys.executable, *start, "daemon", "--config", str(config), *args],
                stdout=out, stderr=out,
                env=env(NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="1000000"),
            )
        d = Daemon(proc, log, notify)
        try:
            yield d
        except BaseException:
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)  # the daemon dumps every thread's stack into its log
                time.sleep(0.5)
            print("---- daemon log ----\n" + d.text())  # pytest shows it with the failure
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def applied_names(db_url: str) -> list[str]:
    return [r["file_name"] for r in imports(db_url) if r["status"] == "applied"]


def test_daemon_applies_reloads_serves_metrics_and_stops(
    db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    prepare_database(db_url)
    port = free_port()
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state",
                          schedule=FAST, metrics={"listen": f"127.0.0.1:{port}"})
    with daemon(config, tmp_path) as d:
        assert d.wait_notify("READY=1").startswith("READY=1\nSTATUS=started; every 1s")
        sshd.put(remote_dir / "settlements_1.xml",
                 xml_export([counterparty(1), counterparty(2)], generated_at="2026-11-25T10:00:00"))
        wait_for("the first export applied", lambda: applied_names(db_url) == ["settlements_1.xml"])
        d.wait_notify("WATCHDOG=1")
        d.wait_log("run finished: 1 applied")
        assert any(m.startswith("STATUS=idle; last:") and "1 applied" in m for m in d.received())

        # The metrics endpoint: values of this run, data age from the export's as-of time (Moscow, UTC+3).
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        metrics = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                   for line in body.splitlines() if line and not line.startswith("#")}
        assert metrics['syncd_files_total{outcome="applied"}'] == 1
        assert metrics['syncd_rows_total{action="inserted",block="balance"}'] == 2
        assert metrics["syncd_up"] == 1
        assert 0 <= time.time() - metrics["syncd_last_success_timestamp_seconds"] < 300
        as_of = datetime(2026, 11, 25, 7, 0, tzinfo=UTC).timestamp()
        assert abs(metrics["syncd_data_age_seconds"] - (time.time() - as_of)) < 300

        # A broken configuration is refused; the running one keeps working.
        good = config.read_text()
        config.write_text(good.replace("[schedule]", "[schedule]\nintervall = 5"))
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("configuration reload refused, keeping the running one")
        assert "unknown key schedule.intervall" in d.text()
        sshd.put(remote_dir / "settlements_2.xml",
                 xml_export([counterparty(1), counterparty(2)], generated_at="2026-11-25T11:00:00"))
        wait_for("the second export applied", lambda: len(applied_names(db_url)) == 2)

        # A good new configuration takes effect: the source folder changed.
        other = sshd.make_dir("moved")
        config.write_text(good.replace(str(remote_dir.relative_to(sshd.home)), str(other.relative_to(sshd.home))))
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("configuration reloaded from")
        sshd.put(other / "settlements_3.xml",
                 xml_export([counterparty(1), counterparty(2)], generated_at="2026-11-25T12:00:00"))
        wait_for("the export in the new folder applied", lambda: "settlements_3.xml" in applied_names(db_url))

        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 25  # STOP_GRACE is 30 s; an idle daemon does not wait for it
        assert "cutting the current run" not in d.text()
        assert any(m.startswith("STOPPING=1") for m in d.received())
    assert {r["trigger"] for r in runs(db_url)} == {"daemon"}
    assert "Traceback" not in d.text()


def test_a_hung_run_is_cut_and_the_daemon_goes_on(
    db_url: str, mariadb: MariaDB, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    prepare_database(db_url)
    port = free_port()
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state",
                          schedule={**FAST, "run_timeout": "2s"}, metrics={"listen": f"127.0.0.1:{port}"})
    blocker = create_engine(db_url).connect()
    try:
        # Another session holds the balance table: the apply waits for it (lock_wait_timeout is a year).
        blocker.execute(text("LOCK TABLES contractor_balance WRITE"))
        sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1)]))
        with daemon(config, tmp_path) as d:
            d.wait_log("cutting the current run: it exceeded schedule.run_timeout (2s)", timeout=20)
            d.wait_log("run cut after 2s (schedule.run_timeout)")
            assert any("cutting a run that exceeded run_timeout" in m for m in d.received())
            blocker.execute(text("UNLOCK TABLES"))
            wait_for("the export applied once the table is free", lambda: applied_names(db_url), timeout=20)
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            cut = [float(line.split()[1]) for line in body.splitlines() if line.startswith("syncd_runs_cut_total ")]
            assert cut == [d.text().count("run cut after 2s (schedule.run_timeout)")] and cut[0] >= 1, body
            d.proc.send_signal(signal.SIGTERM)
            assert d.proc.wait(timeout=10) == 0
    finally:
        # A pooled connection keeps LOCK TABLES when closed: a failed test must unlock, or dropping the
        # database at teardown waits for the table for ever.
        blocker.execute(text("UNLOCK TABLES"))
        blocker.close()
        blocker.engine.dispose()
    recorded = runs(db_url)
    # The first step of a run that reads the locked table is the relink (no links applied yet).
    assert recorded[0]["exit_code"] == 7 and "relinking the blocks to changed links failed" in recorded[0]["error"]
    assert recorded[-1]["exit_code"] == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_a_run_leaves_every_file_whole_or_absent(
    db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    prepare_database(db_url)
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state", schedule=FAST)
    for i in range(3):
        sshd.put(remote_dir / f"settlements_{i}.xml",
                 xml_export([counterparty(n) for n in range(1, 301)], generated_at=f"2026-11-25T1{i}:00:00"))
    with daemon(config, tmp_path) as d:
        d.wait_notify("READY=1")
        d.wait_notify("STATUS=syncing")
        d.proc.send_signal(sig)
        assert d.proc.wait(timeout=60) == 0
    # Files are whole or absent: the blocks hold exactly what the ledger says was applied, each applied
    # file went to processed/ and the others stay on the source. (That the current file finishes, not
    # just rolls back: test_sigterm_while_a_file_is_written.)
    applied = applied_names(db_url)
    assert all(r["status"] == "applied" for r in imports(db_url))
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT COUNT(*) FROM contractor_balance")).scalar()
    engine.dispose()
    assert rows == (300 if applied else 0)
    for i in range(3):
        name = f"settlements_{i}.xml"
        assert (remote_dir / ("processed/" + name if name in applied else name)).exists(), name


@pytest.mark.parametrize("bad", ["[schedule]\ncron = \"61 * * * *\"\n", "not toml ["])
def test_bad_config_at_start_exits_3(tmp_path: Path, bad: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f'[source]\ntype = "local"\npath = "{tmp_path}"\n[database]\nurl = "sqlite:///x"\n{bad}')
    result = subprocess.run([sys.executable, "-m", "syncd", "daemon", "--config", str(config)],
                            capture_output=True, text=True, timeout=30, env=env())
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("syncd: error:")



def _between_runs(config: Path) -> RunLock:
    """The run lock, taken between two of the daemon's runs: no run starts while the test holds it."""
    cfg = config_mod.load(config)

    def take() -> RunLock | None:
        try:
            return RunLock(cfg).acquire()
        except LockedError:
            return None

    return wait_for("a moment between two runs", take)  # type: ignore[no-any-return]


@pytest.mark.parametrize("grace", [None, 2.0])
@pytest.mark.parametrize("streamed", [False, True])
def test_sigterm_while_a_file_is_written(db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path,
                                         grace: float | None, streamed: bool) -> None:
    """README: SIGTERM lets the current file finish (up to 30 s); after that it is cut and rolls back. Exit 0.

    The file's write waits on a row another session holds; SIGTERM comes while it waits. With the real
    grace the row is freed after the signal and the file finishes; with a grace of 2 s (a test hook) the row
    stays held past it, and the file must roll back. `streamed`: a large file waits behind it, to be applied
    while it downloads (not downloaded yet when the stop comes); it stays on the source for the next start."""
    prepare_database(db_url)
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state",
                          schedule={**FAST, "interval": "1s"}, source={"apply_while_downloading": streamed})
    sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1), counterparty(2)]))
    with daemon(config, tmp_path, grace=grace) as d:
        wait_for("the first export applied", lambda: applied_names(db_url) == ["settlements_1.xml"])
        with row_locked(db_url, guid(1)):
            lock = _between_runs(config)  # both files reach the daemon's next run together
            try:
                if streamed:
                    large = xml_export([counterparty(i, payments=3) for i in range(1, 2001)],
                                       generated_at="2026-11-25T12:00:00")
                    assert len(large) > 1 << 20
                    sshd.put(remote_dir / "settlements_3.xml", large)
                sshd.put(remote_dir / "settlements_2.xml", xml_export(
                    [counterparty(1, debt="5.00"), counterparty(2)], generated_at="2026-11-25T11:00:00"))
            finally:
                lock.release()
            wait_for("the run waiting on the locked row", lambda: waiting_for_row_lock(db_url), timeout=60)
            d.proc.send_signal(signal.SIGTERM)
            d.wait_log("stopping: no new files are taken")
            if grace is not None:
                assert d.proc.wait(timeout=60) == 0  # cut after the grace while the row is still held
        assert d.proc.wait(timeout=60) == 0
        assert any(m.startswith("STOPPING=1") for m in d.received())
    if grace is None:
        # The file finished: blocks, ledger and source agree.
        assert applied_names(db_url) == ["settlements_1.xml", "settlements_2.xml"]
        assert debts(db_url) == {guid(1): 5.0, guid(2): 1000.0}
        assert (remote_dir / "processed" / "settlements_2.xml").exists()
        assert "cutting the current run" not in d.text()
        if streamed:
            assert (remote_dir / "settlements_3.xml").exists()  # the stop came first: not taken
    else:
        d.wait_log("cutting the current run: it did not finish within 2s of the stop request")
        assert applied_names(db_url) == ["settlements_1.xml"]
        assert debts(db_url) == {guid(1): 1000.0, guid(2): 1000.0}  # rolled back
        assert (remote_dir / "settlements_2.xml").exists()  # taken again by the next start
    assert "Traceback" not in d.text()


def test_sighup_applies_a_changed_schedule_at_once(db_url: str, sshd: SshServer, remote_dir: Path,
                                                   tmp_path: Path) -> None:
    prepare_database(db_url)
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state",
                          schedule={**FAST, "interval": "1h"})
    with daemon(config, tmp_path) as d:
        wait_for("the run at start", lambda: len(runs(db_url)) == 1)
        sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1)]))
        config.write_text(config.read_text().replace('interval = "1h"', 'interval = "1s"'))
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("configuration reloaded from")
        # Without the new schedule the next run would be an hour away.
        wait_for("the export applied on the new schedule", lambda: applied_names(db_url) == ["settlements_1.xml"])
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=30) == 0
