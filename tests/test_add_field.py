"""Adding a field to syncd is one row in the field table (syncd/contract/fields.py).

The test copies the syncd package, adds one row to each stored kind of the copy's table and nothing
else, and runs the copy as a user would: `syncd migrate` makes the new columns, `syncd run-once`
applies an XML export and then a JSON one carrying the new values, and a value that breaks the new
field's rule is refused by name. If any other file had to change for a new field (a reader's key set,
the writer's column list, the block's fields), a value would come out NULL or the run would fail.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from syncd.bitrix import core

ROOT = Path(__file__).resolve().parent.parent
CP = "5f0c5b6e-8a43-4a8e-9b42-0c1d2e3f4a01"
PAY = "5f0c5b6e-8a43-4a8e-9b42-0c1d2e3f4b01"
DOC = "5f0c5b6e-8a43-4a8e-9b42-0c1d2e3f4c01"

NEW_ROWS = {
    "COUNTERPARTY": 'Field("prepayment", "amount", rule="non_negative", element="Prepayment", default="_ZERO", '
                    'column=Column("UF_PREPAYMENT", "double", "Предоплата", "Prepayment")),',
    "PAYMENT": 'Field("comment", "text", column=Column("UF_COMMENT", "string", "Комментарий", "Comment")),',
    "DOCUMENT": 'Field("contract", "text", column=Column("UF_CONTRACT", "string", "Договор", "Contract")),',
}


def add_row(table: str, kind: str, row: str) -> str:
    """`row` as the last row of `kind`'s block in the text of fields.py."""
    start = table.index(f"\n{kind}: Final = Kind(")
    end = table.index("\n))\n", start)
    return f"{table[:end]}\n    {row}{table[end:]}"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of syncd (with its migrations) whose field table has one more row per stored kind."""
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "syncd", pkg / "syncd", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "migrations", pkg / "syncd" / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    fields = pkg / "syncd" / "contract" / "fields.py"
    before = fields.read_text(encoding="utf-8")
    after = before
    for kind, row in NEW_ROWS.items():
        after = add_row(after, kind, row)
    fields.write_text(after, encoding="utf-8")
    changed = [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:2] in ("+ ", "- ")]
    assert changed == [f"+     {row}" for row in NEW_ROWS.values()]  # one row each, nothing else
    return pkg


def run_copy(pkg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # cwd outside the checkout and PYTHONPATH first: the copy is the syncd that runs, not the installed one.
    env = {k: v for k, v in os.environ.items() if k not in ("SYNCD_CONFIG", "NOTIFY_SOCKET")}
    env["PYTHONPATH"] = str(pkg)
    return subprocess.run([sys.executable, "-m", "syncd", *args], cwd=pkg.parent, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def xml(export_id: str, prepayment: str, comment: str, contract: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SettlementsExport formatVersion="1" exportId="{export_id}" generatedAt="2026-11-25T10:00:00" mode="full">
  <Counterparty id="{CP}" name="ООО «Ромашка»" inn="7701234567">
    <Debt>1000.00</Debt>
    <Prepayment>{prepayment}</Prepayment>
    <Payments><Payment id="{PAY}" date="2026-11-20T12:00:00" sum="500.00" comment="{comment}"/></Payments>
    <OpenDocuments><Document id="{DOC}" date="2026-11-01" outstanding="250.00" contract="{contract}"/></OpenDocuments>
  </Counterparty>
  <Summary counterparties="1" payments="1" documents="1"/>
</SettlementsExport>
""".encode()


def json_export(export_id: str, prepayment: str, comment: str, contract: str) -> bytes:
    return f"""{{"formatVersion": 1, "exportId": "{export_id}", "generatedAt": "2026-11-25T11:00:00", "mode": "full",
 "counterparties": [{{"id": "{CP}", "name": "ООО «Ромашка»", "inn": "7701234567", "debt": 900,
   "prepayment": {prepayment},
   "payments": [{{"id": "{PAY}", "date": "2026-11-20T12:00:00", "sum": 500, "comment": "{comment}"}}],
   "openDocuments": [{{"id": "{DOC}", "date": "2026-11-01", "outstanding": 250, "contract": "{contract}"}}]}}],
 "summary": {{"counterparties": 1, "payments": 1, "documents": 1}}}}""".encode()


def values(url: str) -> tuple[object, object, object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return (conn.execute(text("SELECT UF_PREPAYMENT FROM contractor_balance")).scalar_one(),
                    conn.execute(text("SELECT UF_COMMENT FROM contractor_payments")).scalar_one(),
                    conn.execute(text("SELECT UF_CONTRACT FROM contractor_documents")).scalar_one())
    finally:
        engine.dispose()


def test_a_new_field_is_one_row_in_the_table(copy: Path, db_url: str, tmp_path: Path) -> None:
    engine = create_engine(db_url)
    core.create_stand_in_core(engine)
    engine.dispose()
    exports = tmp_path / "exports"
    exports.mkdir()
    config = tmp_path / "syncd.toml"
    config.write_text(f"""[source]
type = "local"
path = "{exports}"
[database]
url = "{db_url}"
[state]
dir = "{tmp_path / 'state'}"
""", encoding="utf-8")

    done = run_copy(copy, "migrate", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    engine = create_engine(db_url)
    with engine.connect() as conn:
        made = dict(conn.execute(text("SELECT FIELD_NAME, USER_TYPE_ID FROM b_user_field "
                                      "WHERE FIELD_NAME IN ('UF_PREPAYMENT', 'UF_COMMENT', 'UF_CONTRACT')")).all())
    engine.dispose()
    assert made == {"UF_PREPAYMENT": "double", "UF_COMMENT": "string", "UF_CONTRACT": "string"}

    old = time.time() - 3600  # older than source.min_age
    first = exports / "settlements_1.xml"
    first.write_bytes(xml("7d7c1a52-0000-4000-8000-000000000001", "1 500,50", "по счёту 12", "Д-7"))
    os.utime(first, (old, old))
    done = run_copy(copy, "run-once", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert values(db_url) == (1500.5, "по счёту 12", "Д-7")

    second = exports / "settlements_2.json"
    second.write_bytes(json_export("7d7c1a52-0000-4000-8000-000000000002", "2000.25", "аванс", "Д-8"))
    os.utime(second, (old, old))
    done = run_copy(copy, "run-once", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert values(db_url) == (2000.25, "аванс", "Д-8")

    # The new row's rule is the checker's: a negative prepayment is refused by name, and nothing changes.
    third = exports / "settlements_3.xml"
    third.write_bytes(xml("7d7c1a52-0000-4000-8000-000000000003", "-1.00", "x", "y").replace(
        b"2026-11-25T10:00:00", b"2026-11-25T12:00:00"))
    os.utime(third, (old, old))
    done = run_copy(copy, "run-once", "--config", str(config))
    assert done.returncode == 4, done.stdout + done.stderr
    assert "Prepayment" in done.stdout + done.stderr
    assert values(db_url) == (2000.25, "аванс", "Д-8")
