"""Progress for big files shows on a terminal only: a real pseudo-terminal, then a pipe."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from syncd.plumbing.progress import TerminalProgress
from tests.exports import counterparty, xml_export
from tests.site import make_site


def _config(tmp_path: Path, db_url: str) -> Path:
    site = make_site(db_url, tmp_path, migrated=True)
    site.drop("settlements_1.xml", xml_export([counterparty(n, payments=3) for n in range(1, 3001)]))
    site.engine.dispose()
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(
        f'[source]\ntype = "local"\npath = "{site.exports}"\n[database]\nurl = "{db_url}"\n'
        f'[state]\ndir = "{site.state}"\n',
        encoding="utf-8",
    )
    return cfg


def test_progress_on_a_terminal(tmp_path: Path, bitrix_db_url: str) -> None:
    cfg = _config(tmp_path, bitrix_db_url)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "run-once", "--config", str(cfg)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary)
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(primary)
    assert proc.returncode == 0
    text = screen.decode()
    assert "downloading settlements_1.xml: 100%" in text
    assert re.search(r"applying settlements_1\.xml: [\d ]+ counterparties\r", text)
    assert text.endswith("\r\x1b[K")  # the line is cleared before the report is printed
    assert out.decode().startswith("applied    settlements_1.xml")


def test_no_progress_when_piped(tmp_path: Path, bitrix_db_url: str) -> None:
    cfg = _config(tmp_path, bitrix_db_url)
    done = subprocess.run([sys.executable, "-m", "syncd", "run-once", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "downloading" not in done.stderr and "applying" not in done.stderr and "\r" not in done.stderr


def test_the_line_of_a_file_applied_while_it_downloads() -> None:
    out = io.StringIO()
    shown = TerminalProgress(out)
    shown.apply("settlements_1.xml", 41000, (135_200_000, 301_000_000))
    assert out.getvalue() == "\r\x1b[Kapplying settlements_1.xml: 41 000 counterparties (135.2 of 301.0 MB downloaded)"
    shown.clear()
    assert out.getvalue().endswith("\r\x1b[K")


def test_a_new_phase_shows_at_once_and_updates_within_a_phase_are_throttled() -> None:
    out = io.StringIO()
    shown = TerminalProgress(out, rate=0.001)  # one redraw per 1000 s: only forced ones and new phases show
    shown.download("settlements_1.xml", 10, 20)
    shown.download("settlements_1.xml", 15, 20)
    shown.download("settlements_1.xml", 20, 20)  # the end of a download always shows
    shown.apply("settlements_1.xml", 1000)  # right after it: a new phase
    shown.apply("settlements_1.xml", 2000)
    lines = out.getvalue().split("\r\x1b[K")[1:]
    assert lines == [
        "downloading settlements_1.xml: 50% (0.0 of 0.0 MB)",
        "downloading settlements_1.xml: 100% (0.0 of 0.0 MB)",
        "applying settlements_1.xml: 1 000 counterparties",
    ]
