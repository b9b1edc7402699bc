"""The hostile-file corpus: every file in tests/corpus/ with the verdict syncd must reach and why.

Each case is `NAME.EXT` (the export) beside `NAME.expect.toml`:

    expect = "refused"      # or "accepted"
    stage  = "validate"     # `syncd validate FILE` judges it offline; "apply": only `syncd run-once`
                            # against the database can (column capacities, charsets)
    reason = "…"            # text the message must contain (refused only)
    why    = "…"            # what an unlucky or hostile 1C does here, and why the verdict

Each case runs `syncd` as a process, as an admin would, and its peak RSS is read from the kernel
(wait4): a hostile file must be refused without buffering it first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ops_helpers import env, sql

CORPUS = Path(__file__).resolve().parent / "corpus"
PEAK_RSS_LIMIT_MB = 200


@dataclass(frozen=True)
class Case:
    path: Path
    expect: str
    stage: str
    reason: str
    why: str


def _cases() -> list[Case]:
    cases = []
    for spec in sorted(CORPUS.glob("*.expect.toml")):
        meta = tomllib.loads(spec.read_text(encoding="utf-8"))
        stem = spec.name.removesuffix(".expect.toml")
        exports = [p for p in CORPUS.iterdir() if p.name.startswith(stem + ".") and p != spec
                   and not p.name.endswith(".expect.toml")]
        assert len(exports) == 1, f"{spec.name}: expected one export file beside it, found {exports}"
        cases.append(Case(exports[0], meta["expect"], meta.get("stage", "validate"), meta.get("reason", ""),
                          meta["why"]))
    return cases


CASES = _cases()


def _run(*args: str | Path) -> tuple[int, str, float]:
    """Run `syncd ARGS` and return its exit code, its output and its peak RSS in MB."""
    proc = subprocess.Popen([sys.executable, "-m", "syncd", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env())
    assert proc.stdout is not None
    try:
        output = proc.stdout.read()
    finally:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, output, usage.ru_maxrss / 1024


def test_the_corpus_is_large_and_every_case_says_why() -> None:
    assert len(CASES) >= 10, "the corpus should hold the hostile and unlucky files syncd was tried with"
    for case in CASES:
        assert case.expect in ("refused", "accepted"), case.path.name
        assert case.stage in ("validate", "apply"), case.path.name
        assert case.why.strip(), f"{case.path.name}: say why"
        assert case.expect == "accepted" or case.reason.strip(), f"{case.path.name}: a refusal names its reason"


@pytest.mark.parametrize("case", [c for c in CASES if c.stage == "validate"], ids=lambda c: c.path.name)
def test_validate(case: Case) -> None:
    code, output, peak_mb = _run("validate", case.path)
    assert "Traceback" not in output
    if case.expect == "refused":
        assert code == 4, output
        assert case.reason in output, output
    else:
        assert code == 0, output
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"


@pytest.mark.parametrize("case", [c for c in CASES if c.stage == "apply"], ids=lambda c: c.path.name)
def test_apply(case: Case, bitrix_db_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    target = inbox / case.path.name
    target.write_bytes(case.path.read_bytes())
    os.utime(target, (0, 0))  # long finished: no min_age wait
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[source]\ntype = "local"\npath = "{inbox}"\npattern = "*"\n\n[database]\nurl = "{bitrix_db_url}"\n\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n', encoding="utf-8")
    code, output, peak_mb = _run("run-once", "-c", config)
    assert "Traceback" not in output
    balance_rows = sql(bitrix_db_url, "SELECT COUNT(*) FROM contractor_balance")
    if case.expect == "refused":
        assert code == 4, output
        assert case.reason in output, output
        assert balance_rows == 0, "a refused file changes nothing"
        assert (inbox / "failed" / case.path.name).exists(), "a refused file is moved out of the way"
    else:
        assert code == 0, output
        assert balance_rows > 0, output
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"
