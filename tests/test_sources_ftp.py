"""The FTP source against a real FTP/FTPS server process (tests/rig/ftpd.py, pyftpdlib): no mocks."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd import config as config_mod
from syncd.config import FileAction, SourceConfig
from syncd.errors import ConfigError, SourceError
from syncd.sources import open_source
from syncd.sources.ftp import FtpSource
from tests.exports import counterparty, guid, json_export, xml_export
from tests.ops_helpers import syncd
from tests.rig.ftpd import FtpServer, running_ftpd, running_vsftpd
from tests.rig.tlscerts import Certs, make_certs
from tests.site import make_site

ENV = "SYNCD_TEST_FTP_PASSWORD"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "s3cret-ftp-Пароль")


@pytest.fixture(params=["explicit", "implicit", "plain"])
def server(request: pytest.FixtureRequest, tmp_path: Path, certs: Certs) -> Iterator[FtpServer]:
    with running_ftpd(tmp_path / "ftp", request.param, cert=certs.server) as srv:
        yield srv


def config(server: FtpServer, certs: Certs, **kw: object) -> SourceConfig:
    values: dict[str, object] = dict(
        type="ftp", timezone=ZoneInfo("Europe/Moscow"), host=server.host, port=server.port,
        username=server.username, password_env=ENV, ca_file=certs.ca,
        tls="none" if server.mode == "plain" else server.mode, allow_plaintext=server.mode == "plain",
        connect_timeout=timedelta(seconds=5), io_timeout=timedelta(seconds=5),
    )
    if server.mode == "plain":
        values["ca_file"] = None
    values.update(kw)
    return SourceConfig(**values)  # type: ignore[arg-type]


def source(server: FtpServer, certs: Certs, **kw: object) -> FtpSource:
    src = open_source(config(server, certs, **kw))
    assert isinstance(src, FtpSource)
    return src


# ---------------------------------------------------------------- listing, reading, moving


@pytest.mark.parametrize("mlsd", [True, False], ids=["mlsd", "nlst-size-mdtm"])
def test_listing_applies_the_completeness_rules(tmp_path: Path, certs: Certs, mlsd: bool) -> None:
    with running_ftpd(tmp_path / "ftp", "explicit", cert=certs.server, mlsd=mlsd) as srv:
        srv.put("settlements_2.xml", "two")
        srv.put("settlements_1.xml", "one!")
        srv.put("settlements_3.xml.tmp", "x")
        srv.put("settlements_4.xml.part", "x")
        srv.put("settlements_5.xml", "x", age=5)
        srv.put("settlements_6.xml", "x")  # waits for its marker
        srv.put("other.xml", "x")
        (srv.root / "settlements_dir").mkdir()
        with source(srv, certs, min_age=timedelta(minutes=1), require_marker=True) as src:
            srv.put("settlements_1.xml.done", "")
            srv.put("settlements_2.xml.done", "")
            srv.put("settlements_5.xml.done", "")
            listing = src.list()
    assert [(f.name, f.size) for f in listing.ready] == [("settlements_1.xml", 4), ("settlements_2.xml", 3)]
    assert abs(listing.ready[0].mtime - (time.time() - 3600)) < 5  # min_age from the server's MLSD/MDTM
    reasons = {w.name: w.reason for w in listing.waiting}
    assert reasons["settlements_5.xml"].startswith("still being written")
    assert reasons["settlements_6.xml"] == "no settlements_6.xml.done marker yet"
    assert set(reasons) == {"settlements_5.xml", "settlements_6.xml"}


def test_download_head_and_move_with_the_marker(server: FtpServer, certs: Certs, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    server.put("settlements_1.xml", data)
    server.put("settlements_1.xml.done", "")
    (server.root / "processed").mkdir()
    server.put("processed/settlements_1.xml", "an earlier file of the same name")
    dest = tmp_path / "got.xml"
    with source(server, certs, require_marker=True) as src:
        [remote] = src.list().ready
        assert src.head(remote, 100) == data[:100]
        seen: list[tuple[int, int]] = []
        sha = src.fetch(remote, dest, lambda done, total: seen.append((done, total)))
        src.finish(remote, FileAction("move", "processed"))
        assert src.list().ready == []  # the connection is still good after all of it
    assert sha == hashlib.sha256(data).hexdigest() and dest.read_bytes() == data
    assert seen[-1] == (len(data), len(data))
    assert sorted(p.name for p in (server.root / "processed").iterdir()) == [
        "settlements_1.1.xml", "settlements_1.1.xml.done", "settlements_1.xml"]
    assert (server.root / "processed/settlements_1.xml").read_text() == "an earlier file of the same name"
    assert not (server.root / "settlements_1.xml").exists()


def test_active_mode(tmp_path: Path, certs: Certs) -> None:
    with running_ftpd(tmp_path / "ftp", "explicit", cert=certs.server) as srv:
        srv.put("settlements_1.xml", "active")
        with source(srv, certs, passive=False) as src:
            [remote] = src.list().ready
            src.fetch(remote, tmp_path / "got")
    assert (tmp_path / "got").read_text() == "active"


def test_delete_and_keep(server: FtpServer, certs: Certs) -> None:
    server.put("settlements_1.xml", "a")
    server.put("settlements_1.xml.done", "")
    server.put("settlements_2.xml", "b")
    with source(server, certs) as src:
        one, two = src.list().ready
        src.finish(one, FileAction("delete"))
        src.finish(two, FileAction("keep"))
    assert sorted(p.name for p in server.root.iterdir()) == ["settlements_2.xml"]


def test_hostile_names_are_refused_and_left_alone(tmp_path: Path, certs: Certs) -> None:
    with running_ftpd(tmp_path / "ftp", "explicit", cert=certs.server, mlsd=False) as srv:
        srv.put("settlements_a\\..\\x.xml", "x")
        srv.put("settlements_\x1b[2J.xml", "x")
        srv.put("settlements_ok.xml", "x")
        with source(srv, certs) as src:
            listing = src.list()
            assert [f.name for f in listing.ready] == ["settlements_ok.xml"]
            refused = {r.name: r.reason for r in listing.refused}
            assert set(refused) == {"settlements_a\\..\\x.xml", "settlements_\x1b[2J.xml"}
            assert "backslash" in refused["settlements_a\\..\\x.xml"]
            with pytest.raises(SourceError, match="not a plain file name"):
                src.finish(dataclasses.replace(listing.ready[0], name="../settlements_ok.xml"),
                           FileAction("delete"))
        assert (srv.root / "settlements_a\\..\\x.xml").exists() and (srv.root / "settlements_ok.xml").exists()


def test_vsftpd_requiring_tls_session_reuse(tmp_path: Path, certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    """vsftpd (Debian's, require_ssl_reuse=YES, no MLSD): plain ftplib gets `522 session reuse required`
    on every data connection; the source reuses the session: lists (NLST+SIZE+MDTM), reads, moves."""
    with running_vsftpd(tmp_path, certs.server_cert, certs.server_key) as srv:
        monkeypatch.setenv(ENV, srv.password)
        data = b"v" * 300_000
        srv.put("settlements_1.xml", data)
        srv.put("settlements_1.xml.done", "")
        srv.put("settlements_2.xml.part", "x")
        srv.put("settlements_3.xml", "x", age=2)
        with source(srv, certs, remote_dir="exports", require_marker=True) as src:
            listing = src.list()
            assert [f.name for f in listing.ready] == ["settlements_1.xml"]
            assert [w.name for w in listing.waiting] == ["settlements_3.xml"]
            [remote] = listing.ready
            assert src.head(remote, 1000) == data[:1000]
            assert src.fetch(remote, tmp_path / "got") == hashlib.sha256(data).hexdigest()
            src.finish(remote, FileAction("move", "processed"))
        assert sorted(p.name for p in (srv.root / "processed").iterdir()) == ["settlements_1.xml",
                                                                             "settlements_1.xml.done"]


# ---------------------------------------------------------------- TLS and logins


def test_a_certificate_from_another_ca_is_refused(tmp_path: Path, certs: Certs) -> None:
    for mode in ("explicit", "implicit"):
        with running_ftpd(tmp_path / mode, mode, cert=certs.server) as srv:
            srv.put("settlements_1.xml", "x")
            with pytest.raises(SourceError, match=r"TLS certificate is not trusted .*source\.ca_file") as err:
                source(srv, certs, ca_file=certs.other_ca).__enter__()
            assert "nothing was read" in str(err.value)
            # Without ca_file the system CAs decide: a private CA is not among them.
            with pytest.raises(SourceError, match=r"not trusted .*the system's CAs"):
                source(srv, certs, ca_file=None).__enter__()


def test_a_pinned_fingerprint_replaces_the_ca_check(tmp_path: Path, certs: Certs) -> None:
    with running_ftpd(tmp_path / "ftp", "explicit", cert=certs.server) as srv:
        srv.put("settlements_1.xml", "x")
        with source(srv, certs, ca_file=None, tls_fingerprint=certs.fingerprint) as src:
            [remote] = src.list().ready
            src.fetch(remote, tmp_path / "got")
        with pytest.raises(SourceError, match=r"TLS CERTIFICATE MISMATCH: .* fingerprint [0-9A-F:]{95}"):
            source(srv, certs, ca_file=None, tls_fingerprint="ab" * 32).__enter__()


def test_a_wrong_password_is_refused_without_showing_it(server: FtpServer, certs: Certs,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "wrong-password-123")
    with pytest.raises(SourceError, match=f"login as 'onec' with the password from \\${ENV} refused") as err:
        source(server, certs).__enter__()
    assert "wrong-password-123" not in str(err.value)
    monkeypatch.delenv(ENV)
    with pytest.raises(SourceError, match=f"\\${ENV}, but that variable is not set"):
        source(server, certs).__enter__()


def test_explicit_tls_against_a_plain_server_says_so(tmp_path: Path, certs: Certs) -> None:
    with running_ftpd(tmp_path / "ftp", "plain") as srv, pytest.raises(SourceError, match="the server refused TLS"):
        source(srv, certs, tls="explicit", allow_plaintext=False).__enter__()


def test_clear_text_needs_allow_plaintext_and_is_warned_about(tmp_path: Path, certs: Certs,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    base = {"source": {"type": "ftp", "host": "h", "username": "u", "password_env": ENV, "tls": "none"},
            "database": {"url": "sqlite://"}}
    with pytest.raises(ConfigError, match="clear text; use TLS, or set allow_plaintext = true"):
        config_mod.from_mapping(base)
    base["source"]["allow_plaintext"] = True
    cfg = config_mod.from_mapping(base).source
    assert (cfg.type, cfg.tls, cfg.port) == ("ftp", "none", 21)
    implicit = config_mod.from_mapping({**base, "source": {**base["source"], "tls": "implicit"}}).source
    assert implicit.port == 990
    with pytest.raises(ConfigError, match="tls_fingerprint: 'xyz' is not a SHA-256 fingerprint"):
        config_mod.from_mapping({**base, "source": {**base["source"], "tls": "explicit", "tls_fingerprint": "xyz"}})
    import syncd.sources.ftp as ftp_module
    ftp_module._warned_plaintext = False
    with running_ftpd(tmp_path / "ftp", "plain") as srv, caplog.at_level(logging.WARNING), source(srv, certs) as src:
        src.list()
    assert "clear text" in caplog.text


# ---------------------------------------------------------------- failures


def test_a_server_that_goes_away_mid_download_fails_the_download(tmp_path: Path, certs: Certs) -> None:
    data = b"x" * (2 << 20)
    with running_ftpd(tmp_path / "ftp", "plain", rate=256 * 1024) as srv:
        srv.put("settlements_1.xml", data)
        dest = tmp_path / "got.xml"
        with source(srv, certs) as src:
            [remote] = src.list().ready
            threading.Timer(1.0, srv.kill).start()
            t0 = time.monotonic()
            with pytest.raises(SourceError, match="will retry next run"):
                src.fetch(remote, dest)
            assert time.monotonic() - t0 < 8
        assert not dest.exists()
        assert list(tmp_path.glob(".got.xml.*")) == []
        assert (srv.root / "settlements_1.xml").read_bytes() == data  # still there for the next run


def test_a_stalled_server_hits_io_timeout(tmp_path: Path, certs: Certs) -> None:
    with running_ftpd(tmp_path / "ftp", "plain") as srv:
        srv.put("settlements_1.xml", "x")
        with source(srv, certs, io_timeout=timedelta(seconds=1)) as src:
            srv.proc.send_signal(19)  # SIGSTOP: the server freezes
            try:
                with pytest.raises(SourceError, match="no answer within io_timeout=1s"):
                    src.list()
            finally:
                srv.proc.send_signal(18)


# ---------------------------------------------------------------- a whole run


def test_runs_over_ftps_apply_skip_duplicates_and_move_rejected(tmp_path: Path, certs: Certs,
                                                               bitrix_db_url: str) -> None:
    site = make_site(bitrix_db_url, tmp_path, migrated=True)
    with running_ftpd(tmp_path / "ftp", "explicit", cert=certs.server) as srv:
        cfg = config(srv, certs, min_age=timedelta(seconds=60))
        site.cfg = dataclasses.replace(site.cfg, source=cfg)
        full = xml_export([counterparty(1), counterparty(2)])
        srv.put("settlements_20261125_100000.xml", full)
        srv.put("settlements_20261125_103000.json",
                json_export([counterparty(1, debt="10.00")], mode="delta", generated_at="2026-11-25T10:30:00"))
        srv.put("settlements_20261125_110000.xml", b"<Settlements broken")
        first = site.run()
        assert first.exit_code == 4  # the broken one was rejected; the others applied
        assert [(f.name, f.status) for f in first.files] == [
            ("settlements_20261125_110000.xml", "rejected"),
            ("settlements_20261125_100000.xml", "applied"),
            ("settlements_20261125_103000.json", "applied")]
        assert float(site.balance()[guid(1)]["UF_DEBT"]) == 10.0
        assert sorted(p.name for p in (srv.root / "failed").iterdir()) == ["settlements_20261125_110000.xml"]
        assert len(list((srv.root / "processed").iterdir())) == 2

        srv.put("settlements_20261125_100000_again.xml", full)  # 1C's retried job
        second = site.run()
        assert second.exit_code == 0
        assert [(f.name, f.status) for f in second.files] == [("settlements_20261125_100000_again.xml", "duplicate")]
        assert float(site.balance()[guid(1)]["UF_DEBT"]) == 10.0
        assert len(list((srv.root / "processed").iterdir())) == 3

        srv.put("settlements_20261125_120000.xml", xml_export([counterparty(3)], generated_at="2026-11-25T12:00:00"))
        srv.kill()
        down = site.run()
        assert down.exit_code == 6 and "FTP server" in str(down.error)
        assert guid(3) not in site.balance()


def test_run_once_over_implicit_ftps_as_a_user_runs_it(tmp_path: Path, certs: Certs, bitrix_db_url: str) -> None:
    """`syncd run-once` as a process, with a config file like the README's: the output and exit codes."""
    with running_ftpd(tmp_path / "ftp", "implicit", cert=certs.server) as srv:
        cfg = tmp_path / "syncd.toml"
        cfg.write_text(f'''
[source]
type = "ftp"
host = "{srv.host}"
port = {srv.port}
username = "{srv.username}"
password_env = "{ENV}"
tls = "implicit"
ca_file = "{certs.ca}"
require_marker = true
min_age = "0s"
connect_timeout = "5s"
io_timeout = "5s"

[database]
url = "{bitrix_db_url}"

[state]
dir = "{tmp_path / 'state'}"
''', encoding="utf-8")
        srv.put("settlements_20261125_100000.xml", xml_export([counterparty(1)]))
        srv.put("settlements_20261125_110000.xml", xml_export([counterparty(2)], generated_at="2026-11-25T11:00:00"))
        srv.put("settlements_20261125_100000.xml.done", "")
        done = syncd("run-once", "--config", cfg, extra_env={ENV: srv.password})
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith("waiting    settlements_20261125_110000.xml")
        assert "no settlements_20261125_110000.xml.done marker yet" in lines[0]
        assert lines[1].startswith("applied    settlements_20261125_100000.xml")
        assert sorted(p.name for p in (srv.root / "processed").iterdir()) == [
            "settlements_20261125_100000.xml", "settlements_20261125_100000.xml.done"]
        assert srv.password not in done.stdout + done.stderr

        wrong = syncd("run-once", "--config", cfg, extra_env={ENV: "nope"})
        assert wrong.returncode == 6
        assert "login as 'onec' with the password from $SYNCD_TEST_FTP_PASSWORD refused" in wrong.stderr


def test_the_readme_configs_for_ftp_and_http_load() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if 'type = "ftp"' in b or 'type = "http"' in b]
    assert len(blocks) == 2
    for block in blocks:
        data = tomllib.loads(block)
        cfg = config_mod.from_mapping({**data, "database": {"url": "sqlite://"}})
        assert cfg.source.type in ("ftp", "http")
