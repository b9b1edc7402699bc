"""`make demo` works with nothing but Python: the bundled sample lands in an SQLite stand-in for Bitrix."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path


def test_demo_applies_the_sample_and_prints_balances_and_ledger(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "syncd.admin.demo", "--dir", str(work)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "applied    settlements_sample.xml" in done.stdout
    assert "ContractorBalance:" in done.stdout and "Ledger (syncd_imports):" in done.stdout
    assert "ООО «Ромашка»" in done.stdout
    db = sqlite3.connect(work / "bitrix.sqlite")
    (linked,) = db.execute("SELECT COUNT(*) FROM contractor_balance WHERE UF_BITRIX_USER_ID IS NOT NULL").fetchone()
    (status,) = db.execute("SELECT status FROM syncd_imports").fetchone()
    assert linked == 2 and status == "applied"
    # The file was taken from the export folder.
    assert not (work / "exports" / "settlements_sample.xml").exists()


def test_make_demo_on_a_fresh_clone_prints_only_the_demo_and_installs_no_test_tools(tmp_path: Path) -> None:
    """`make demo` as a newcomer types it: a fresh venv, syncd installed without the test extras, and no
    setuptools warnings before the demo (the package data is declared)."""
    repo = Path(__file__).resolve().parent.parent
    clone = tmp_path / "clone"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (repo / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, clone / name)

    # As a newcomer's shell runs it: not as a sub-make of `make test` (which would add "make[1]: Entering …").
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    done = subprocess.run(["make", "demo", f"PYTHON={sys.executable}"], cwd=clone, capture_output=True, text=True,
                          timeout=600, env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    # This machine's pip configuration points at find-links folders that may be absent: pip's, not ours.
    said = [line for line in (done.stdout + done.stderr).splitlines() if not line.startswith("WARNING: Location ")]
    assert not [line for line in said if "arning" in line or "setuptools" in line], said
    assert said[:2] == [f"{sys.executable} -m venv .venv", "installing syncd into .venv (about a minute)"]
    assert said[2].startswith("syncd demo: applying settlements_sample.xml from demo-state/exports")
    assert "ContractorBalance:" in done.stdout
    bin_dir = clone / ".venv" / "bin"
    assert (bin_dir / "syncd").exists()
    assert not (bin_dir / "pytest").exists() and not (bin_dir / "mypy").exists() and not (bin_dir / "ruff").exists()
