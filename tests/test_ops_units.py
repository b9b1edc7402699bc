"""The shipped systemd units and cron line: `systemd-analyze verify` passes and they say what the README says."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"
ANALYZE = shutil.which("systemd-analyze")


def _verify(tmp_path: Path, names: list[str]) -> subprocess.CompletedProcess[str]:
    # verify needs instances, not templates, and an executable ExecStart: point it at a stand-in binary.
    fake = tmp_path / "syncd"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    units = []
    for name in names:
        text = (CONTRIB / "systemd" / name).read_text().replace("/usr/local/bin/syncd", str(fake))
        target = tmp_path / name.replace("@.", "@shop1.")
        target.write_text(text)
        units.append(str(target))
    return subprocess.run(
        [str(ANALYZE), "verify", "--man=no", *units], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "info"},
    )


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_units_verify_cleanly(tmp_path: Path) -> None:
    result = _verify(tmp_path, ["syncd@.service", "syncd-once@.service", "syncd-once@.timer"])
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings for verify: the test allows no output at all.
    assert result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr + result.stdout


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    fake = tmp_path / "syncd"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    text = (CONTRIB / "systemd" / "syncd@.service").read_text()
    unit = tmp_path / "syncd@shop1.service"
    unit.write_text(text.replace("/usr/local/bin/syncd", str(fake)).replace("ProtectHome=", "ProtectHom="))
    result = subprocess.run([str(ANALYZE), "verify", "--man=no", str(unit)], capture_output=True, text=True)
    assert "ProtectHom" in result.stderr


def test_service_unit_settings() -> None:
    text = (CONTRIB / "systemd" / "syncd@.service").read_text()
    for line in (
        "Type=notify", "ExecStart=/usr/local/bin/syncd daemon --config /etc/syncd/%i.toml", "WatchdogSec=",
        "Restart=on-failure", "User=syncd", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/syncd/%i", "StateDirectory=syncd/%i", "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "SystemCallFilter=@system-service",
        "EnvironmentFile=-/etc/syncd/%i.env", "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert line in text, line
    once = (CONTRIB / "systemd" / "syncd-once@.service").read_text()
    assert "Type=oneshot" in once and "SuccessExitStatus=8" in once and "run-once" in once
    timer = (CONTRIB / "systemd" / "syncd-once@.timer").read_text()
    assert "Unit=syncd-once@%i.service" in timer and "WantedBy=timers.target" in timer


def test_cron_line() -> None:
    text = (CONTRIB / "cron" / "syncd").read_text()
    assert "MAILTO=" in text
    jobs = [line for line in text.splitlines() if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(jobs) == 1
    fields = jobs[0].split(None, 6)
    assert fields[5] == "syncd"  # /etc/cron.d lines name the user
    assert "syncd run-once" in fields[6] and "--if-stale 90m" in fields[6] and "--quiet" in fields[6]


def test_malloc_arenas_are_limited_unless_the_environment_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from syncd.plumbing.memory import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # the admin's setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is True  # glibc (Debian here) accepts it


def test_the_collector_runs_less_often_while_a_file_is_applied_and_as_before_after() -> None:
    import gc

    from syncd.plumbing.memory import bulk_gc

    before = gc.get_threshold()
    with bulk_gc(50_000):
        assert gc.get_threshold() == (50_000, *before[1:])
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), bulk_gc(50_000):
        raise RuntimeError("a failed apply")
    assert gc.get_threshold() == before
