"""schedule.watch: the daemon lists the source between runs and applies a new complete export at once.

Against the suite's sshd and MariaDB and a real local folder: the daemon process with a one-hour
interval applies a file dropped with its marker within seconds; a file without its marker, or one
already handled, starts no run; the watch's own connection, shut under it, is made again.
"""

from __future__ import annotations

import signal
import socket
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from syncd import config as config_mod
from syncd.config import ConfigError, from_mapping
from syncd.daemon import describe_schedule
from syncd.run import run_once
from syncd.run.watch import Watcher
from syncd.sources.sftp import SftpSource
from tests.exports import counterparty, xml_export
from tests.ops_helpers import debts, prepare_database, runs, wait_for, write_config
from tests.rig.sshd import SshServer
from tests.test_daemon import applied_names as applied_names_of
from tests.test_daemon import daemon

# A run only when the watch sees a file: the interval is far away, the marker makes min_age unneeded.
WATCH = {"interval": "1h", "watch": "1s", "run_timeout": "60s", "misfire_grace": "60s"}
FAST_SOURCE = {"require_marker": True, "min_age": "0s"}


def schedule(**values: str) -> config_mod.ScheduleConfig:
    base = {"source": {"type": "local", "path": "/srv"}, "database": {"url": "sqlite:///x.db"}}
    return from_mapping({**base, "schedule": values}).schedule


def test_watch_setting() -> None:
    assert schedule().watch == timedelta(seconds=60) and schedule().watch_every() == 60
    assert schedule(watch="15s").watch_every() == 15
    assert schedule(watch="off").watch is None and schedule(watch="0").watch_every() is None
    # Not shorter than the interval: every run lists the source anyway, there is nothing to watch for.
    assert schedule(interval="1m", watch="1m").watch_every() is None
    assert schedule(cron="*/30 * * * *", watch="30s").watch_every() == 30
    assert describe_schedule(schedule(interval="30m")).endswith(", watch 60s")
    with pytest.raises(ConfigError, match=r"schedule\.watch: '500ms' is too short: at least 1s"):
        schedule(watch="500ms")
    with pytest.raises(ConfigError, match=r"schedule\.watch: 'soon' is not a duration"):
        schedule(watch="soon")


def drop(sshd: SshServer, folder: Path, name: str, data: bytes) -> None:
    """As 1C does it: the file, then its marker."""
    sshd.put(folder / name, data, age=None)
    sshd.put(folder / f"{name}.done", b"", age=None)


def test_the_daemon_applies_a_new_file_at_once_between_scheduled_runs(
    db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    prepare_database(db_url)
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state",
                          schedule=WATCH, source={**FAST_SOURCE, "on_success": "keep"})
    with daemon(config, tmp_path) as d:
        d.wait_log("run finished")  # the start run: nothing there yet
        assert "watch 1s" in d.text()
        # No marker yet: waiting, not taken, no run started.
        sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1, debt="10.00")]), age=None)
        threading.Event().wait(3)
        assert applied_names_of(db_url) == [] and [r["trigger"] for r in runs(db_url)] == ["daemon"]
        sshd.put(remote_dir / "settlements_1.xml.done", b"", age=None)
        wait_for("the file applied by the watch", lambda: applied_names_of(db_url) == ["settlements_1.xml"],
                 timeout=15)
        assert debts(db_url) == {counterparty(1)["id"]: 10.0}

        drop(sshd, remote_dir, "settlements_2.xml",
             xml_export([counterparty(1, debt="20.00")], generated_at="2026-11-25T11:00:00"))
        wait_for("the second file applied", lambda: len(applied_names_of(db_url)) == 2, timeout=15)
        # Kept on the source (on_success = "keep"), they start no more runs.
        threading.Event().wait(4)
        triggers = [r["trigger"] for r in runs(db_url)]
        assert triggers == ["daemon", "watch", "watch"], triggers
        assert "watch: new complete export settlements_2.xml: starting a run now" in d.text()
        d.proc.terminate()
        assert d.proc.wait(timeout=15) == 0
    assert debts(db_url) == {counterparty(1)["id"]: 20.0}
    assert "Traceback" not in d.text()


def test_the_daemon_watches_a_local_folder(db_url: str, tmp_path: Path) -> None:
    prepare_database(db_url)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[source]\ntype = "local"\npath = "{inbox}"\nrequire_marker = true\nmin_age = "0s"\n'
        f'[database]\nurl = "{db_url}"\n[state]\ndir = "{tmp_path / "state"}"\n'
        '[schedule]\ninterval = "1h"\nwatch = "1s"\n', encoding="utf-8")
    with daemon(config, tmp_path) as d:
        d.wait_log("run finished")
        (inbox / "settlements_1.xml").write_bytes(xml_export([counterparty(3)]))
        (inbox / "settlements_1.xml.done").write_bytes(b"")
        wait_for("the file applied", lambda: applied_names_of(db_url) == ["settlements_1.xml"], timeout=15)
        wait_for("the file moved to processed/", lambda: (inbox / "processed" / "settlements_1.xml").exists())
        d.proc.terminate()
        assert d.proc.wait(timeout=15) == 0
    assert [r["trigger"] for r in runs(db_url)] == ["daemon", "watch"]


def sever(source: SftpSource) -> None:
    """The network drops the watch's SFTP session: its socket is shut under it (both ends see it go)."""
    client = source._client
    assert client is not None
    transport = client.get_transport()
    assert transport is not None
    transport.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]


def test_the_watch_keeps_one_connection_and_makes_it_again_when_it_drops(
    db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prepare_database(db_url)
    cfg = config_mod.load(write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state",
                                       schedule=WATCH, source=FAST_SOURCE))
    results: list[int] = []

    def apply() -> bool:
        result = run_once(cfg, trigger="watch")
        results.append(result.exit_code)
        return result.error is None

    watcher = Watcher(lambda: cfg, apply, threading.Event())
    try:
        for _ in range(5):  # an unchanged folder: listings on the one connection, no run
            assert watcher.check() is False
        assert (watcher.listings, watcher.connects, results) == (5, 1, [])
        drop(sshd, remote_dir, "settlements_1.xml", xml_export([counterparty(1)]))
        assert watcher.check() is True and results == [0]
        assert watcher.check() is False  # moved to processed/: nothing new

        assert isinstance(watcher._source, SftpSource)
        sever(watcher._source)
        drop(sshd, remote_dir, "settlements_2.xml",
             xml_export([counterparty(1, debt="5.00")], generated_at="2026-11-25T11:00:00"))
        with caplog.at_level("INFO", logger="syncd.watch"):
            assert watcher.check() is True
        assert watcher.connects == 2 and results == [0, 0]
        assert "watch: connected to" in caplog.text and "again" in caplog.text
    finally:
        watcher.stop()
    assert applied_names_of(db_url) == ["settlements_1.xml", "settlements_2.xml"]


def test_a_failed_run_is_tried_again_at_the_next_listing_and_a_dead_source_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "settlements_1.xml").write_bytes(b"<x/>")
    cfg = from_mapping({"source": {"type": "local", "path": str(inbox), "min_age": "0s"},
                        "database": {"url": "sqlite:///x.db"}, "schedule": {"watch": "1s"}})
    answers = [False, True]

    watcher = Watcher(lambda: cfg, lambda: answers.pop(0), threading.Event())
    assert watcher.check() is True  # the run failed (say, the database was down)…
    assert watcher.check() is True  # …so the same file starts one again
    assert watcher.check() is False and answers == []

    inbox.rename(tmp_path / "gone")
    with caplog.at_level("INFO", logger="syncd.watch"):
        for _ in range(3):
            assert watcher.check() is False
        assert caplog.text.count("watch: cannot list the source") == 1
        (tmp_path / "gone").rename(inbox)
        assert watcher.check() is False
        assert "watch: the source answers again" in caplog.text
    watcher.stop()


def test_a_reload_turns_the_watch_on(db_url: str, tmp_path: Path) -> None:
    prepare_database(db_url)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = tmp_path / "syncd.toml"
    text = (f'[source]\ntype = "local"\npath = "{inbox}"\nrequire_marker = true\nmin_age = "0s"\n'
            f'[database]\nurl = "{db_url}"\n[state]\ndir = "{tmp_path / "state"}"\n'
            '[schedule]\ninterval = "1h"\nwatch = "off"\n')
    config.write_text(text, encoding="utf-8")
    with daemon(config, tmp_path) as d:
        d.wait_log("run finished")
        assert "watch" not in d.wait_notify("READY=1")
        (inbox / "settlements_1.xml").write_bytes(xml_export([counterparty(4)]))
        (inbox / "settlements_1.xml.done").write_bytes(b"")
        threading.Event().wait(3)
        assert applied_names_of(db_url) == []  # no watch: it waits for the hourly run
        config.write_text(text.replace('watch = "off"', 'watch = "1s"'), encoding="utf-8")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("schedule changed: every 3600s, run_timeout 1200s, misfire_grace 300s, watch 1s")
        wait_for("the file applied once the watch is on", lambda: applied_names_of(db_url) == ["settlements_1.xml"],
                 timeout=15)
        d.proc.terminate()
        assert d.proc.wait(timeout=15) == 0
