"""`syncd validate FILE...`: offline check of export files, a report per file, exit 0 / 1."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from syncd.cli import cli
from tests.data.build import CP1, counterparty_xml, write, xml_export

SAMPLES = Path(__file__).resolve().parent.parent / "syncd" / "samples"


def test_valid_files_exit_0() -> None:
    files = [str(SAMPLES / name) for name in ("settlements_sample.xml", "settlements_sample.json")]
    result = CliRunner().invoke(cli, ["validate", *files])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"{files[0]}: 5 counterparties, 6 payments, 6 open documents; debt 477 300.50, overdue 25 000.00, " \
           "payments 269 700.00, outstanding on documents 477 300.50" in lines
    assert f"{files[0]}: OK" in lines and f"{files[1]}: OK" in lines
    assert lines[-1] == "2 of 2 files OK"


def test_a_bad_file_exits_1_and_names_the_problem(tmp_path: Path) -> None:
    good = str(SAMPLES / "settlements_sample_cp1251.xml")
    bad = write(tmp_path, "bad.xml", xml_export(counterparty_xml(debt="12e3")))
    result = CliRunner().invoke(cli, ["validate", good, str(bad)])
    assert result.exit_code == 4
    lines = result.output.splitlines()
    assert f'{bad}: line 3, counterparty #1 (id={CP1}): field Debt: "12e3" is not an amount: expected digits with a ' \
           "dot or comma before the kopecks, such as 12345.67 or 12 345,67 (no exponent, no dot between thousands)" \
           in lines
    assert f"{bad}: 1 problem(s): the file would be rejected" in lines
    assert f"{good}: OK" in lines
    assert lines[-1] == "1 of 2 files OK"


def test_missing_and_empty_files_are_problems_not_tracebacks(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.json", "")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "gone.xml"), str(empty)])
    assert result.exit_code == 4
    assert f"{tmp_path / 'gone.xml'}: cannot open the file: No such file or directory" in result.output
    assert f"{empty}: empty file: 1C may still be writing it, or the export failed" in result.output
    assert "Traceback" not in result.output


def test_timezone_option() -> None:
    sample = str(SAMPLES / "settlements_sample.xml")
    result = CliRunner().invoke(cli, ["validate", "--timezone", "Asia/Yekaterinburg", sample])
    assert result.exit_code == 0
    assert "generated at 2026-11-25T10:00:00+05:00" in result.output
    result = CliRunner().invoke(cli, ["validate", "--timezone", "Mars/Olympus", sample])
    assert result.exit_code == 2
    assert "unknown time zone 'Mars/Olympus'" in result.output


def test_help_documents_the_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["validate", "--help"])
    assert result.exit_code == 0
    assert "0 every file is a valid export; 4 at least one file has problems" in result.output
    assert "--timezone ZONE" in result.output
