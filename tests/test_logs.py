"""Log output: plain, journald (priority prefixes, no timestamps), JSON; secrets never shown."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.plumbing import logs


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mysql+pymysql://syncd:s3cr%40t@db:3306/bitrix", "mysql+pymysql://syncd:***@db:3306/bitrix"),
        ("connect to sftp://user:hunter22@host/x failed", "connect to sftp://user:***@host/x failed"),
        ("password=hunter22 host=db", "password=*** host=db"),
        ("PASSWORD: 'hunter22', user", "PASSWORD: '***', user"),
        ('{"db_password": "x"} passwd=abc&pwd=def', '{"db_password": "x"} passwd=***&pwd=***'),
        ("mysql+pymysql://syncd@db/bitrix", "mysql+pymysql://syncd@db/bitrix"),
        ("applied settlements_1.xml: balance +1", "applied settlements_1.xml: balance +1"),
    ],
)
def test_mask_patterns(text: str, expected: str) -> None:
    assert logs.mask(text) == expected


def test_filter_masks_configured_values_in_args_and_tracebacks() -> None:
    out = io.StringIO()
    logs.setup(level=logging.INFO, stream=out)
    logging.getLogger().handlers[0].filters[0] = logs.SecretFilter(["Tr0ub4dor&3"])
    log = logging.getLogger("syncd.test")
    log.info("server said %s", "bad credentials Tr0ub4dor&3")
    try:
        raise RuntimeError("login with Tr0ub4dor&3 refused")
    except RuntimeError:
        log.exception("failed")
    text = out.getvalue()
    assert "Tr0ub4dor&3" not in text
    assert "bad credentials ***" in text and "login with *** refused" in text and "Traceback" in text


def test_plain_format_has_timestamp_and_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    logs.setup(level=logging.INFO, stream=out)
    logging.getLogger("syncd.runner").warning("held x")
    line = out.getvalue().strip()
    assert line.endswith("WARNING syncd.runner: held x") and line[:4].isdigit()


def test_journald_format_when_stderr_is_the_journal_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "journal"
    with path.open("w+") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        logs.setup(level=logging.DEBUG, stream=stream)
        log = logging.getLogger("syncd.daemon")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        stream.flush()
    assert path.read_text().splitlines() == [
        "<7>syncd.daemon: d", "<6>syncd.daemon: i", "<4>syncd.daemon: w", "<3>syncd.daemon: e",
    ]


def test_inherited_journal_stream_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:1")  # some other stream, e.g. from a parent under systemd
    out = io.StringIO()
    logs.setup(level=logging.INFO, stream=out)
    logging.getLogger("syncd").info("x")
    assert not out.getvalue().startswith("<")


def test_json_format() -> None:
    out = io.StringIO()
    logs.setup(level=logging.INFO, fmt="json", stream=out)
    logging.getLogger("syncd.runner").info("applied %s via mysql://u:pw12345@h/db", "f.xml")
    obj = json.loads(out.getvalue())
    assert obj["level"] == "info" and obj["logger"] == "syncd.runner"
    assert obj["msg"] == "applied f.xml via mysql://u:***@h/db"
    assert obj["ts"].endswith("+00:00")
