"""docs/testing.md stays in step with the README: every exit code and outcome has its row, every test named exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOC = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start:end if end != -1 else None]


def _first_cells(table: str) -> list[str]:
    return [line.split("|")[1].strip() for line in table.splitlines()
            if line.startswith("|") and not line.startswith("|---")][1:]


def test_every_exit_code_of_the_readme_has_a_row() -> None:
    codes = _first_cells(_section(README, "### Exit codes"))
    assert codes == [str(n) for n in range(9)]
    rows = _first_cells(_section(DOC, "## Exit codes and their order"))
    for code in codes:
        assert any(row.startswith(f"exit {code}:") for row in rows), f"exit {code} has no row in docs/testing.md"
    # The order "the first of 7, 6, 4, 5 wins": every pair.
    order = re.search(r"the first of ([\d, ]+) wins", README)
    assert order is not None
    ranked = [c.strip() for c in order.group(1).split(",")]
    for i, high in enumerate(ranked):
        for low in ranked[i + 1:]:
            assert any(row.startswith(f"{high} wins over {low}") for row in rows), f"{high} over {low}"


def test_every_outcome_of_the_readme_has_a_row() -> None:
    outcomes = _first_cells(_section(README, "| outcome | meaning |"))
    assert outcomes == ["applied", "duplicate", "superseded", "held", "rejected", "rejected (name refused)", "waiting"]
    rows = _first_cells(_section(DOC, "## Outcomes of `run-once`"))
    for outcome in outcomes:
        assert any(row.startswith(f"`{outcome}`") for row in rows), f"{outcome} has no row in docs/testing.md"


def test_every_metric_of_the_readme_is_asserted_by_the_metrics_test() -> None:
    metrics = re.findall(r"^\| `(syncd_[a-z_]+)`", _section(README, "| metric | meaning |"), re.M)
    metrics += re.findall(r"`(syncd_[a-z_]+)`, `(syncd_[a-z_]+)`", _section(README, "| metric | meaning |"))[0]
    source = (ROOT / "tests" / "test_promises.py").read_text(encoding="utf-8")
    body = source[source.index("def test_every_metric_of_the_readme_in_the_textfile"):]
    body = body[:body.index("\ndef ")]
    for metric in set(metrics):
        assert metric.removesuffix("_total") in body, metric


def test_every_test_named_in_the_doc_exists() -> None:
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", DOC)
    assert len(named) > 50
    for path, test in named:
        file = ROOT / path
        assert file.exists(), path
        if test:
            assert re.search(rf"^def {test}\(", file.read_text(encoding="utf-8"), re.M), f"{path}::{test}"


def test_every_test_named_in_the_reliability_doc_exists() -> None:
    """docs/reliability.md names tests as `tests/file.py::test` and, after it in the same row, `::test`."""
    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    checked = 0
    for line in doc.splitlines():
        current: Path | None = None
        for path, test in re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", line):
            current = ROOT / path if path else current
            assert current is not None, f"'::{test}' with no file before it: {line[:80]}"
            assert re.search(rf"^def {test}\(", current.read_text(encoding="utf-8"), re.M), f"{current}::{test}"
            checked += 1
    assert checked > 40
