"""`make demo` works with nothing but Python: the bundled sample lands in an SQLite stand-in for Bitrix."""

from __future__ import annotations

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
