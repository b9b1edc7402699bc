"""The HTTP source against a real HTTP(S) server the test starts (tests/rig/httpd.py): no mocks."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd import config as config_mod
from syncd.config import FileAction, SourceConfig
from syncd.errors import ConfigError, SourceError
from syncd.sources import open_source
from syncd.sources.http import HttpSource
from tests.exports import counterparty, guid, xml_export
from tests.rig.httpd import HttpServer, running_httpd
from tests.rig.tlscerts import Certs, make_certs
from tests.site import make_site

PASSWORD_ENV = "SYNCD_TEST_HTTP_PASSWORD"
TOKEN_ENV = "SYNCD_TEST_HTTP_TOKEN"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def server(certs: Certs) -> Iterator[HttpServer]:
    with running_httpd(cert=certs.server_cert, key=certs.server_key) as srv:
        srv.body = xml_export([counterparty(1)])
        yield srv


def config(server: HttpServer, tmp_path: Path, certs: Certs, **kw: object) -> SourceConfig:
    values: dict[str, object] = dict(
        type="http", timezone=ZoneInfo("Europe/Moscow"), url=server.url, ca_file=certs.ca,
        state_dir=tmp_path / "state", connect_timeout=timedelta(seconds=5), io_timeout=timedelta(seconds=5),
    )
    values.update(kw)
    return SourceConfig(**values)  # type: ignore[arg-type]


def source(server: HttpServer, tmp_path: Path, certs: Certs, **kw: object) -> HttpSource:
    src = open_source(config(server, tmp_path, certs, **kw))
    assert isinstance(src, HttpSource)
    return src


def one_run(src: HttpSource, dest: Path) -> str | None:
    """What the runner does with a source: list, fetch what is ready, finish it. The sha256, or None."""
    with src:
        listing = src.list()
        if not listing.ready:
            return None
        [remote] = listing.ready
        sha = src.fetch(remote, dest)
        src.finish(remote, FileAction("move", "processed"))
        return sha


def test_etag_second_run_downloads_nothing(server: HttpServer, tmp_path: Path, certs: Certs) -> None:
    server.last_modified = time.time() - 120
    src = source(server, tmp_path, certs)
    assert one_run(src, tmp_path / "a") == hashlib.sha256(server.body).hexdigest()
    assert (tmp_path / "a").read_bytes() == server.body
    assert one_run(src, tmp_path / "b") is None
    assert not (tmp_path / "b").exists()
    assert [r["status"] for r in server.requests] == ["200", "304"]
    assert server.requests[1]["if-none-match"] == server.current_etag()
    # A server that ignores If-None-Match but sends the same ETag: its body is not read either.
    server.honour_conditional = False
    assert one_run(src, tmp_path / "c") is None
    # A new export is fetched again.
    server.honour_conditional = True
    server.body = xml_export([counterparty(2)], generated_at="2026-11-25T11:00:00")
    assert one_run(src, tmp_path / "d") == hashlib.sha256(server.body).hexdigest()


def test_a_listed_export_is_named_after_the_url_and_its_time(server: HttpServer, tmp_path: Path,
                                                             certs: Certs) -> None:
    server.last_modified = 1796370000.0
    with source(server, tmp_path, certs) as src:
        [remote] = src.list().ready
    assert remote.name == "export_" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(1796370000)) + ".xml"
    assert (remote.size, remote.mtime) == (len(server.body), 1796370000.0)


def test_a_large_export_is_read_header_first_and_then_whole(server: HttpServer, tmp_path: Path,
                                                            certs: Certs) -> None:
    server.body = b"<x>" + b"a" * (3 << 20) + b"</x>"
    server.chunked = True
    with source(server, tmp_path, certs) as src:
        [remote] = src.list().ready
        assert src.head(remote, 10) == server.body[:10]
        sha = src.fetch(remote, tmp_path / "got")
    assert sha == hashlib.sha256(server.body).hexdigest()
    assert len(server.requests) == 1  # one GET for both


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_cut_off_body_fails_and_is_fetched_again(server: HttpServer, tmp_path: Path, certs: Certs,
                                                   chunked: bool) -> None:
    server.body = b"z" * 500_000
    server.chunked = chunked
    server.cut_after = 200_000
    src = source(server, tmp_path, certs)
    with pytest.raises(SourceError, match=r"cut off.*nothing applied; will retry next run"):
        one_run(src, tmp_path / "got")
    assert not (tmp_path / "got").exists() and list(tmp_path.glob(".got.*")) == []
    server.cut_after = None
    assert one_run(src, tmp_path / "got") == hashlib.sha256(server.body).hexdigest()  # no ETag was kept


def test_a_5xx_fails_the_run(server: HttpServer, tmp_path: Path, certs: Certs) -> None:
    server.status = 500
    with pytest.raises(SourceError, match="GET answered 500 Internal Server Error: the 1C side failed; nothing"):
        one_run(source(server, tmp_path, certs), tmp_path / "got")
    server.status = 404
    with pytest.raises(SourceError, match=r"GET answered 404 Not Found; check source\.url"):
        one_run(source(server, tmp_path, certs), tmp_path / "got")


def test_a_server_that_hangs_mid_body_hits_io_timeout(server: HttpServer, tmp_path: Path, certs: Certs) -> None:
    server.body = b"q" * 400_000
    server.stall = 4
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="no answer within io_timeout=1s; will retry next run"):
        one_run(source(server, tmp_path, certs, io_timeout=timedelta(seconds=1)), tmp_path / "got")
    assert time.monotonic() - t0 < 3.5
    assert not (tmp_path / "got").exists()


def test_basic_and_bearer_auth_from_the_environment(server: HttpServer, tmp_path: Path, certs: Certs,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    server.basic = ("Обмен", "p4ss-Пароль")
    monkeypatch.setenv(PASSWORD_ENV, "p4ss-Пароль")
    basic = dict(auth="basic", username="Обмен", password_env=PASSWORD_ENV)
    assert one_run(source(server, tmp_path, certs, **basic), tmp_path / "a") is not None  # UTF-8 login
    monkeypatch.setenv(PASSWORD_ENV, "wrong-pass")
    with pytest.raises(SourceError, match=rf"401 Unauthorized: the login was refused; check source.username and "
                                          rf"\${PASSWORD_ENV}") as err:
        one_run(source(server, tmp_path / "2", certs, **basic), tmp_path / "b")
    assert "wrong-pass" not in str(err.value)
    server.basic, server.bearer = None, "t0ken"
    monkeypatch.setenv(TOKEN_ENV, "t0ken")
    assert one_run(source(server, tmp_path / "3", certs, auth="bearer", token_env=TOKEN_ENV), tmp_path / "c")
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(SourceError, match=rf"\${TOKEN_ENV}, but that variable is not set"):
        one_run(source(server, tmp_path / "4", certs, auth="bearer", token_env=TOKEN_ENV), tmp_path / "d")


def test_a_bad_certificate_is_refused(server: HttpServer, tmp_path: Path, certs: Certs) -> None:
    with pytest.raises(SourceError, match=r"TLS certificate is not trusted .*nothing was read"):
        one_run(source(server, tmp_path, certs, ca_file=certs.other_ca), tmp_path / "got")
    with pytest.raises(SourceError, match="TLS CERTIFICATE MISMATCH"):
        one_run(source(server, tmp_path, certs, ca_file=None, tls_fingerprint="00" * 32), tmp_path / "got")
    assert server.requests == []  # nothing was asked, let alone credentials sent
    assert one_run(source(server, tmp_path, certs, ca_file=None, tls_fingerprint=certs.fingerprint),
                   tmp_path / "got") is not None


def test_config_keys_for_http() -> None:
    base = {"database": {"url": "sqlite://"}, "state": {"dir": "/tmp/x"}}
    cfg = config_mod.from_mapping({**base, "source": {"type": "http", "url": "https://1c.example/ut/hs/balance/export",
                                                      "auth": "bearer", "token_env": "T"}})
    assert (cfg.source.type, cfg.source.auth, cfg.source.state_dir) == ("http", "bearer", Path("/tmp/x"))
    with pytest.raises(ConfigError, match="an http:// url sends the password and the exports in clear text"):
        config_mod.from_mapping({**base, "source": {"type": "http", "url": "http://1c.example/x"}})
    with pytest.raises(ConfigError, match=r"source\.pattern does not apply to type = \"http\""):
        config_mod.from_mapping({**base, "source": {"type": "http", "url": "https://h/x", "pattern": "*"}})
    with pytest.raises(ConfigError, match="must not hold credentials"):
        config_mod.from_mapping({**base, "source": {"type": "http", "url": "https://u:secret@h/x"}})
    with pytest.raises(ConfigError, match="auth = \"basic\" needs username and password_env"):
        config_mod.from_mapping({**base, "source": {"type": "http", "url": "https://h/x", "auth": "basic"}})


def test_runs_over_https_apply_once_and_fail_on_5xx(server: HttpServer, tmp_path: Path, certs: Certs,
                                                    bitrix_db_url: str) -> None:
    site = make_site(bitrix_db_url, tmp_path, migrated=True)
    site.cfg = dataclasses.replace(site.cfg, source=config(server, tmp_path, certs, state_dir=site.state))
    server.body = xml_export([counterparty(1), counterparty(2)])
    first = site.run()
    assert first.exit_code == 0, first.error
    assert [f.status for f in first.files] == ["applied"]
    assert guid(2) in site.balance()
    again = site.run()
    assert (again.exit_code, again.files) == (0, [])
    assert server.bodies_sent() == 1
    server.body = xml_export([counterparty(3)], mode="delta", generated_at="2026-11-25T12:00:00")
    server.status = 503
    failed = site.run()
    assert failed.exit_code == 6 and "503" in str(failed.error)
    server.status, server.cut_after = 200, 100
    cut = site.run()
    assert cut.exit_code == 6 and "cut off" in str(cut.error)
    assert guid(3) not in site.balance()
    server.cut_after = None
    assert site.run().exit_code == 0 and guid(3) in site.balance()


def test_the_bearer_token_is_masked_in_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    from syncd.plumbing import logs

    monkeypatch.setenv(TOKEN_ENV, "t0ken-very-secret")
    cfg = config_mod.from_mapping({"database": {"url": "sqlite://"}, "source": {
        "type": "http", "url": "https://h/x", "auth": "bearer", "token_env": TOKEN_ENV}})
    assert logs.mask("sent t0ken-very-secret", logs.config_secrets(cfg)) == "sent ***"
