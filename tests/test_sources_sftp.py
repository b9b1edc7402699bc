"""The SFTP source against a real OpenSSH sshd (tests/rig/sshd.py): no mocks."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.config import FileAction, SourceConfig
from syncd.errors import SourceError
from syncd.sources import open_source
from syncd.sources import sftp as sftp_module
from syncd.sources.sftp import SftpSource
from tests.rig.mariadb import free_port
from tests.rig.sshd import SshServer, keygen, running_sshd, set_age


def config(server: SshServer, folder: Path | str, **kw: object) -> SourceConfig:
    values: dict[str, object] = dict(
        type="sftp",
        timezone=ZoneInfo("Europe/Moscow"),
        host=server.host,
        port=server.port,
        username=server.username,
        private_key=server.client_key,
        known_hosts=server.known_hosts,
        remote_dir=str(folder),
        connect_timeout=timedelta(seconds=5),
        io_timeout=timedelta(seconds=5),
    )
    values.update(kw)
    return SourceConfig(**values)  # type: ignore[arg-type]


def source(server: SshServer, folder: Path | str, **kw: object) -> SftpSource:
    src = open_source(config(server, folder, **kw))
    assert isinstance(src, SftpSource)
    return src


def host_fingerprint(server: SshServer) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(server.workdir / "host_ed25519.pub")], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[1]


@pytest.fixture
def own_sshd() -> Iterator[SshServer]:
    """A server of the test's own, for tests that kill or freeze it."""
    with running_sshd() as server:
        yield server


# ---------------------------------------------------------------- listing


def test_listing_applies_the_rules(sshd: SshServer, remote_dir: Path) -> None:
    sshd.put(remote_dir / "settlements_2.xml", "two")
    sshd.put(remote_dir / "settlements_1.xml", "one!")
    sshd.put(remote_dir / "settlements_3.xml.tmp", "x")
    sshd.put(remote_dir / "settlements_4.xml.part", "x")
    sshd.put(remote_dir / "settlements_5.xml", "x", age=5)
    sshd.put(remote_dir / "other.xml", "x")
    (remote_dir / "settlements_dir").mkdir()
    with source(sshd, remote_dir, min_age=timedelta(minutes=1)) as src:
        listing = src.list()
    assert [(f.name, f.size) for f in listing.ready] == [("settlements_1.xml", 4), ("settlements_2.xml", 3)]
    assert listing.ready[0].mtime == int((remote_dir / "settlements_1.xml").stat().st_mtime)
    (w,) = listing.waiting
    assert w.name == "settlements_5.xml"
    # The age as the server's mtime tells it: at least the 5 s it was given, below min_age (a loaded machine
    # may take many seconds between the put and the listing).
    m = re.fullmatch(r"still being written: modified (\d+)s ago, waiting for min_age=1m", w.reason)
    assert m is not None and 5 <= int(m.group(1)) < 60, w.reason


def test_head_reads_only_the_first_bytes(sshd: SshServer, remote_dir: Path) -> None:
    data = os.urandom(300_000)
    sshd.put(remote_dir / "settlements_1.xml", data)
    with source(sshd, remote_dir) as src:
        [remote] = src.list().ready
        assert src.head(remote, 65536) == data[:65536]
        assert src.head(remote, 1_000_000) == data  # a short file: all of it


def test_marker_required(sshd: SshServer, remote_dir: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", "x")
    sshd.put(remote_dir / "settlements_1.xml.done")
    sshd.put(remote_dir / "settlements_2.xml", "x")
    with source(sshd, remote_dir, require_marker=True) as src:
        listing = src.list()
    assert [f.name for f in listing.ready] == ["settlements_1.xml"]
    assert listing.waiting[0].reason == "no settlements_2.xml.done marker yet"


def test_remote_dir_relative_to_login_directory(sshd: SshServer, remote_dir: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", "x")
    src = source(sshd, remote_dir.name)
    assert src.describe() == f"sftp://{sshd.username}@127.0.0.1:{sshd.port}/~/{remote_dir.name}"
    with src:
        assert [f.name for f in src.list().ready] == ["settlements_1.xml"]


def test_missing_remote_dir_is_a_source_error(sshd: SshServer, remote_dir: Path) -> None:
    with source(sshd, remote_dir / "nope") as src, pytest.raises(SourceError, match=r"listing .*/nope: No such file"):
        src.list()


def test_describe_never_shows_a_password(sshd: SshServer, remote_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PW", "s3cret")
    src = source(sshd, "/srv/in", password_env="SYNCD_TEST_PW")
    assert src.describe() == f"sftp://{sshd.username}@127.0.0.1:{sshd.port}/srv/in"


# ---------------------------------------------------------------- download


def test_fetch_downloads_whole_file(sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 123)
    sshd.put(remote_dir / "settlements_1.xml", data)
    with source(sshd, remote_dir) as src:
        (f,) = src.list().ready
        sha = src.fetch(f, tmp_path / "export.xml")
    assert (tmp_path / "export.xml").read_bytes() == data
    assert sha == hashlib.sha256(data).hexdigest()  # hashed on the way, not read again
    assert os.listdir(tmp_path) == ["export.xml"]  # no temp file left beside it


def fetch_with_progress(server: SshServer, remote_dir: Path, dest: Path, data: bytes) -> list[tuple[int, int]]:
    server.put(remote_dir / "settlements_1.xml", data)
    calls: list[tuple[int, int]] = []
    with source(server, remote_dir) as src:
        (f,) = src.list().ready
        src.fetch(f, dest, progress=lambda done, total: calls.append((done, total)))
        assert src.list().ready == [f]  # no stray answers confuse the next request
    assert dest.read_bytes() == data
    assert calls[-1] == (len(data), len(data))
    assert all(total == len(data) for _, total in calls)
    assert all(a[0] < b[0] for a, b in itertools.pairwise(calls))
    return calls


def test_fetch_keeps_the_pipeline_going_and_reports_progress(
    sshd: SshServer, remote_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Few requests in flight: the 20 MiB file needs ~80 refills, each answer consumed in order.
    monkeypatch.setattr(sftp_module, "REQUESTS", 3)
    data = os.urandom(20 * 1024 * 1024 + 4321)
    calls = fetch_with_progress(sshd, remote_dir, tmp_path / "export.xml", data)
    # OpenSSH announces 255 KiB reads (limits@openssh.com): once per such chunk, as bytes arrive.
    assert len(calls) == -(-len(data) // sftp_module.MAX_CHUNK) == 81


def test_fetch_from_a_server_without_the_limits_extension_reads_32_kib(remote_dir: Path, tmp_path: Path) -> None:
    # The server refuses limits@openssh.com, as a server that does not know it would: syncd asks for
    # the 32 KiB every SFTP server must serve, and the download is just as complete.
    data = os.urandom(3 * 1024 * 1024 + 99)
    with running_sshd(sftp_flags="-P limits") as server:
        calls = fetch_with_progress(server, remote_dir, tmp_path / "export.xml", data)
    assert len(calls) == -(-len(data) // 32768) == 97


def test_fetch_completes_short_reads(
    sshd: SshServer, remote_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenSSH's sftp-server answers at most 255 KiB per read: asking for 1 MiB (more than it
    # announced) gets short reads, which must be completed by asking for the rest before later
    # chunks are written. A server that returns less than asked is allowed by the protocol.
    monkeypatch.setattr(sftp_module, "read_size", lambda sftp: 1024 * 1024)
    monkeypatch.setattr(sftp_module, "REQUESTS", 2)
    data = os.urandom(5 * 1024 * 1024 + 17)
    sshd.put(remote_dir / "settlements_1.xml", data)
    with source(sshd, remote_dir) as src:
        (f,) = src.list().ready
        src.fetch(f, tmp_path / "export.xml")
    assert (tmp_path / "export.xml").read_bytes() == data


def test_fetch_of_a_file_that_shrank_since_listing(sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", os.urandom(3 * 1024 * 1024))
    with source(sshd, remote_dir) as src:
        (f,) = src.list().ready
        sshd.put(remote_dir / "settlements_1.xml", os.urandom(1024 * 1024 + 5))
        with pytest.raises(SourceError, match=r"changed while downloading \(listed 3145728 bytes, downloaded 1048581"):
            src.fetch(f, tmp_path / "export.xml")
        assert src.list().ready != []  # the reads past the end left the connection usable
    assert os.listdir(tmp_path) == []


def test_fetch_of_an_empty_file(sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", b"")
    with source(sshd, remote_dir) as src:
        (f,) = src.list().ready
        src.fetch(f, tmp_path / "export.xml")
    assert (tmp_path / "export.xml").read_bytes() == b""


def test_fetch_refuses_a_file_changed_since_listing(sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", "first")
    with source(sshd, remote_dir) as src:
        (f,) = src.list().ready
        sshd.put(remote_dir / "settlements_1.xml", "first, then more")
        with pytest.raises(SourceError, match=r"changed while downloading.*will retry next run"):
            src.fetch(f, tmp_path / "export.xml")
        # Same size, but rewritten: the mtime tells.
        sshd.put(remote_dir / "settlements_1.xml", "first", age=10)
        with pytest.raises(SourceError, match="changed while downloading"):
            src.fetch(f, tmp_path / "export.xml")
    assert os.listdir(tmp_path) == []


def test_fetch_of_a_vanished_file(sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", "x")
    with source(sshd, remote_dir) as src:
        (f,) = src.list().ready
        (remote_dir / "settlements_1.xml").unlink()
        with pytest.raises(SourceError, match=r"downloading .*settlements_1\.xml .*No such file"):
            src.fetch(f, tmp_path / "export.xml")
        assert src.list().ready == []  # the connection is still usable
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- after handling


def test_finish_keep_and_delete_with_marker(sshd: SshServer, remote_dir: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", "x")
    sshd.put(remote_dir / "settlements_1.xml.done")
    sshd.put(remote_dir / "settlements_2.xml", "x")
    with source(sshd, remote_dir) as src:
        f1, f2 = src.list().ready
        src.finish(f2, FileAction("keep"))
        src.finish(f1, FileAction("delete"))
    assert os.listdir(remote_dir) == ["settlements_2.xml"]


def test_finish_move_creates_folder_numbers_clashes_and_moves_marker(sshd: SshServer, remote_dir: Path) -> None:
    sshd.put(remote_dir / "processed" / "settlements_1.xml", "earlier")
    sshd.put(remote_dir / "settlements_1.xml", "new")
    sshd.put(remote_dir / "settlements_1.xml.done")
    sshd.put(remote_dir / "settlements_2.xml", "bad")
    sshd.put(remote_dir / "settlements_2.xml.done")
    with source(sshd, remote_dir) as src:
        f1, f2 = src.list().ready
        src.finish(f1, FileAction("move", "processed"))
        src.finish(f2, FileAction("move", "failed/1c"))
    assert (remote_dir / "processed" / "settlements_1.xml").read_text() == "earlier"
    assert (remote_dir / "processed" / "settlements_1.1.xml").read_text() == "new"
    assert (remote_dir / "processed" / "settlements_1.1.xml.done").exists()
    assert sorted(os.listdir(remote_dir / "failed" / "1c")) == ["settlements_2.xml", "settlements_2.xml.done"]
    assert sorted(os.listdir(remote_dir)) == ["failed", "processed"]


def test_finish_move_into_a_file_is_a_source_error(sshd: SshServer, remote_dir: Path) -> None:
    sshd.put(remote_dir / "processed", "not a folder")
    sshd.put(remote_dir / "settlements_1.xml", "x")
    with source(sshd, remote_dir) as src:
        (f,) = src.list().ready
        with pytest.raises(SourceError, match="processed exists and is not a folder"):
            src.finish(f, FileAction("move", "processed"))


def test_finish_without_write_permission(sshd: SshServer, remote_dir: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", "x")
    os.chown(remote_dir, 0, 0)  # the login user may read but not change the folder
    with source(sshd, remote_dir) as src:
        (f,) = src.list().ready
        with pytest.raises(SourceError, match=r"deleting .*settlements_1\.xml: Permission denied"):
            src.finish(f, FileAction("delete"))
        with pytest.raises(SourceError, match=r"creating folder .*processed: Permission denied"):
            src.finish(f, FileAction("move", "processed"))


# ---------------------------------------------------------------- trust and login


def test_unknown_host_key_is_refused_with_fingerprint(sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    known = sshd.empty_known_hosts(tmp_path / "known_hosts")
    with pytest.raises(SourceError) as err, source(sshd, remote_dir, known_hosts=known):
        pass
    msg = str(err.value)
    assert "host key is not in source.known_hosts" in msg
    assert f"ssh-ed25519 {host_fingerprint(sshd)}" in msg
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}" in msg


def test_changed_host_key_is_refused(sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    known = sshd.wrong_known_hosts(tmp_path / "known_hosts")
    with pytest.raises(SourceError) as err, source(sshd, remote_dir, known_hosts=known):
        pass
    msg = str(err.value)
    assert "HOST KEY MISMATCH" in msg
    assert host_fingerprint(sshd) in msg
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}'" in msg


def test_wrong_client_key_is_refused(sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    keygen(tmp_path / "other", "not-authorized")
    with (
        pytest.raises(SourceError, match=f"login as 'syncd-test' with key {tmp_path / 'other'} refused"),
        source(sshd, remote_dir, private_key=tmp_path / "other"),
    ):
        pass


def test_passphrase_key_is_refused_before_connecting(sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(tmp_path / "k")], check=True
    )
    with pytest.raises(SourceError, match="protected by a passphrase"), source(
        sshd, remote_dir, private_key=tmp_path / "k"
    ):
        pass


def test_password_only_against_a_key_only_server(
    sshd: SshServer, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCD_TEST_PW", "whatever")
    with (
        pytest.raises(SourceError, match="accepts only publickey"),
        source(sshd, remote_dir, private_key=None, password_env="SYNCD_TEST_PW"),
    ):
        pass


def test_password_login(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_sshd(password=True) as server:
        assert server.password
        folder = server.make_dir()
        try:
            server.put(folder / "settlements_1.xml", "x")
            monkeypatch.setenv("SYNCD_TEST_PW", server.password)
            with source(server, folder, private_key=None, password_env="SYNCD_TEST_PW") as src:
                assert [f.name for f in src.list().ready] == ["settlements_1.xml"]

            monkeypatch.setenv("SYNCD_TEST_PW", "wrong-" + server.password)
            with pytest.raises(SourceError) as err, source(
                server, folder, private_key=None, password_env="SYNCD_TEST_PW"
            ):
                pass
            assert "with the password from $SYNCD_TEST_PW refused" in str(err.value)
            assert server.password not in str(err.value)

            monkeypatch.delenv("SYNCD_TEST_PW")
            with pytest.raises(SourceError, match=r"\$SYNCD_TEST_PW, but that variable is not set"), source(
                server, folder, private_key=None, password_env="SYNCD_TEST_PW"
            ):
                pass
        finally:
            shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- broken networks and servers


def test_connection_refused_fails_fast(sshd: SshServer, remote_dir: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"127\.0\.0\.1:\d+: connection refused"), source(
        sshd, remote_dir, port=free_port()
    ):
        pass
    assert time.monotonic() - started < 20  # refused at once, not after connect_timeout (30 s)


def test_silent_server_times_out(sshd: SshServer, remote_dir: Path) -> None:
    # Accepts TCP (the kernel completes the handshake) but never sends an SSH banner.
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"no answer within connect_timeout=1s"), source(
            sshd, remote_dir, port=mute.getsockname()[1], connect_timeout=timedelta(seconds=1)
        ):
            pass
        assert time.monotonic() - started < 20  # the 1 s connect_timeout, not the default 30 s


def test_server_dying_mid_run(own_sshd: SshServer, tmp_path: Path) -> None:
    folder = own_sshd.make_dir()
    own_sshd.put(folder / "settlements_1.xml", "x")
    with source(own_sshd, folder) as src:
        (f,) = src.list().ready
        own_sshd.kill()
        started = time.monotonic()
        with pytest.raises(SourceError, match="the connection was lost; will retry next run"):
            src.fetch(f, tmp_path / "export.xml")
        with pytest.raises(SourceError, match="not connected"):
            src.list()
        assert time.monotonic() - started < 20  # at once, not after io_timeout (60 s)


def test_hung_server_times_out_on_listing(own_sshd: SshServer) -> None:
    folder = own_sshd.make_dir()
    with source(own_sshd, folder, io_timeout=timedelta(seconds=1)) as src:
        src.list()
        with own_sshd.frozen():
            started = time.monotonic()
            with pytest.raises(SourceError, match="no answer within io_timeout=1s"):
                src.list()
            assert time.monotonic() - started < 30  # the 1 s io_timeout, not the default 60 s


def freeze_when_download_starts(server: SshServer, folder: Path, done: threading.Event) -> threading.Thread:
    """SIGSTOP the server's sessions as soon as the first bytes land in a `.part` file in `folder`."""

    def watch() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            parts = [p for p in folder.iterdir() if p.name.endswith(".part")]
            with contextlib.suppress(FileNotFoundError):
                if parts and parts[0].stat().st_size > 0:
                    for pid in server.session_pids():
                        os.kill(pid, signal.SIGSTOP)  # the rig SIGKILLs them when it stops the server
                    done.set()
                    return
            time.sleep(0.002)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def big_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        out.truncate(size)  # sparse: cheap to make, still `size` bytes to transfer
    set_age(path, 3600)


def test_server_hanging_during_download_is_aborted(own_sshd: SshServer, tmp_path: Path) -> None:
    folder = own_sshd.make_dir()
    size = 64 * 1024 * 1024
    big_file(folder / "settlements_1.xml", size)
    with source(own_sshd, folder, io_timeout=timedelta(seconds=1)) as src:
        (f,) = src.list().ready
        froze = threading.Event()
        watcher = freeze_when_download_starts(own_sshd, tmp_path, froze)
        started = time.monotonic()
        try:
            with pytest.raises(SourceError, match="will retry next run"):
                src.fetch(f, tmp_path / "export.xml")
        finally:
            watcher.join()
        assert froze.is_set(), "the download finished before the server could be frozen"
        # The channel timeout (io_timeout, 1 s) fires here, long before the download deadline would.
        assert time.monotonic() - started < 30
    assert list(tmp_path.iterdir()) == []


def test_download_deadline_when_no_channel_timeout_fires(
    own_sshd: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = own_sshd.make_dir()
    big_file(folder / "settlements_1.xml", 64 * 1024 * 1024)
    # A deadline of io_timeout (1s) plus nothing for the size, to keep the test short.
    monkeypatch.setattr(sftp_module, "MIN_RATE", 10**12)
    with source(own_sshd, folder, io_timeout=timedelta(seconds=1)) as src:
        (f,) = src.list().ready
        # Simulate the paramiko stalls where the channel timeout never fires: only the deadline is left.
        channel = src._conn.get_channel()
        assert channel is not None
        channel.settimeout(None)
        froze = threading.Event()
        watcher = freeze_when_download_starts(own_sshd, tmp_path, froze)
        started = time.monotonic()
        try:
            with pytest.raises(SourceError, match=r"not finished within 1s .*the connection was closed"):
                src.fetch(f, tmp_path / "export.xml")
        finally:
            watcher.join()
        assert froze.is_set(), "the download finished before the server could be frozen"
        assert time.monotonic() - started < 30  # the 1 s deadline, not io_timeout (60 s)
        with pytest.raises(SourceError, match="not connected"):
            src.list()
    assert list(tmp_path.iterdir()) == []
