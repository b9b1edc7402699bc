"""No run of hundreds of digits reaches ijson: its C backend dies of a segmentation fault on an
integer of more digits than Python converts (sys.get_int_max_str_digits, 4300 by default)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.admin.validate import check_file
from syncd.bitrix.hlblock import DigestIndex
from syncd.bitrix.users import Linker
from syncd.errors import ExportError
from syncd.formats import open_export
from syncd.formats.jsonguard import RUN_LIMIT, DigitGuard
from tests.exports import counterparty, json_export
from tests.ops_helpers import env


def _read_all(data: bytes, seed: int) -> None:
    """Hand `data` to the guard in pieces of random sizes."""
    rnd = random.Random(seed)
    guard = DigitGuard("g.json")
    pos = 0
    while pos < len(data):
        end = pos + rnd.randint(1, 2000)
        guard.check(data[pos:end])
        pos = end


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("at", [0, 1, 299, 300, 1999, 5000])
def test_a_run_of_the_limit_is_refused_wherever_the_reads_cut_it(seed: int, at: int) -> None:
    filler = b'{"a": "x1", "b": 12.5},' * 400
    _read_all(filler[:at] + b"," + b"9" * (RUN_LIMIT - 1) + b"," + filler, seed)  # one short: passes
    with pytest.raises(ExportError, match=f"{RUN_LIMIT} or more digits in a row"):
        _read_all(filler[:at] + b"," + b"9" * RUN_LIMIT + b"," + filler, seed)


def test_a_huge_integer_is_refused_not_a_crash(tmp_path: Path) -> None:
    # As a process: before the guard, this killed the interpreter (SIGSEGV inside ijson).
    path = tmp_path / "n.json"
    path.write_bytes(json_export([counterparty(1)]).replace(b'"debt": "1000.00"', b'"debt": 1' + b"0" * 5000))

    done = subprocess.run([sys.executable, "-m", "syncd", "validate", str(path)], capture_output=True, text=True,
                          env=env(), check=False)

    assert done.returncode == 4, done.stdout + done.stderr
    assert f"n.json: {RUN_LIMIT} or more digits in a row" in done.stdout + done.stderr


def _check(tmp_path: Path, content: bytes) -> list[str]:
    path = tmp_path / "t.json"
    path.write_bytes(content)
    return check_file(path, name="t.json", source_tz=ZoneInfo("Europe/Moscow")).problems


@pytest.mark.parametrize(("escape", "char"), [("\\u0000", "U+0000"), ("\\u001F", "U+001F"), ("\\u000b", "U+000B")])
def test_text_xml_could_not_carry_is_refused_naming_the_field(tmp_path: Path, escape: str, char: str) -> None:
    cp = counterparty(1, payments=2)
    cp["payments"][1]["purpose"] = "Оплата PLACEHOLDER по счету"
    content = json_export([cp]).replace(b"PLACEHOLDER", escape.encode())

    problems = _check(tmp_path, content)

    assert len(problems) == 1 and f"field payments[2].purpose: the text holds {char} at character 8" in problems[0]


@pytest.mark.parametrize("text", ["\\u041e\\u041e\\u041e", "\\\\u0001 is how JSON escapes it", "\\ud83d\\ude00",
                                  "tab\\tand\\r\\nnew line"])
def test_escapes_of_ordinary_characters_are_accepted(tmp_path: Path, text: str) -> None:
    content = json_export([counterparty(1, name="PLACEHOLDER")]).replace(b"PLACEHOLDER", text.encode())

    assert _check(tmp_path, content) == []


def test_a_lone_low_surrogate_is_refused_not_a_traceback(tmp_path: Path) -> None:
    # yajl turns \\udc00 without its pair into bytes that are not UTF-8; ijson's UnicodeDecodeError
    # escaped every handler (main printed a traceback).
    content = json_export([counterparty(1)]).replace("Контрагент".encode(), b"\\udc00")

    problems = _check(tmp_path, content)

    assert len(problems) == 1 and "t.json: counterparty #1: not valid JSON text: a string holds a \\u escape of a " \
        "lone UTF-16 surrogate" in problems[0]


def test_a_huge_integer_in_a_changed_counterparty_is_refused_when_the_others_are_known(tmp_path: Path) -> None:
    # With known digests the byte filter stands between the file and ijson: what it hands on is guarded.
    path = tmp_path / "a.json"
    path.write_bytes(json_export([counterparty(1), counterparty(2)]))
    with open_export(path, name="a.json", source_tz=ZoneInfo("Europe/Moscow")) as export:
        records = list(export.changes(DigestIndex(b"salt", Linker(), [])))
    index = DigestIndex(b"salt", Linker(), [(r.digest, n, None) for n, r in enumerate(records, 1)])
    content = json_export([counterparty(1), counterparty(2)])
    at = content.rindex(b'"debt": "1000.00"')
    path.write_bytes(content[:at] + b'"debt": 1' + b"0" * 5000 + content[at + len(b'"debt": "1000.00"'):])

    with (pytest.raises(ExportError, match="or more digits in a row"),
          open_export(path, name="a.json", source_tz=ZoneInfo("Europe/Moscow")) as export):
        list(export.changes(index))
