"""Whole-file checks: collecting every problem (check_file), duplicates found without keeping every id
(nor every id's hash in memory), summaries, the human report, and memory that stays flat while streaming."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.admin.validate import check_file, format_report
from syncd.contract.checks import Checker
from syncd.contract.idspill import HashSpill
from syncd.contract.raw import RawCounterparty
from syncd.contract.records import Counterparty
from syncd.errors import ExportError
from syncd.formats import open_export
from tests.data.build import (
    CP1,
    CP2,
    DOC1,
    EXPORT_ID,
    PAY1,
    PAY2,
    counterparty_json,
    counterparty_xml,
    document_xml,
    json_export,
    payment_json,
    payment_xml,
    write,
    xml_export,
)

MOSCOW = ZoneInfo("Europe/Moscow")
SAMPLES = Path(__file__).resolve().parent.parent / "syncd" / "samples"


def test_sample_report() -> None:
    report = check_file(SAMPLES / "settlements_sample.xml", name="settlements_sample.xml", source_tz=MOSCOW)
    assert report.ok and report.problems == []
    assert report.header is not None and report.header.export_id == EXPORT_ID
    assert (report.counterparties, report.payments, report.documents) == (5, 6, 6)
    assert report.total_debt == Decimal("477300.50")
    assert report.total_overdue_debt == Decimal("25000.00")
    assert report.total_payments == Decimal("269700.00")
    assert report.total_outstanding == Decimal("477300.50")
    assert format_report(report).splitlines() == [
        "settlements_sample.xml: export 2b0c4f5e-9a41-11ef-8c3e-00155d003f0a, full, generated at "
        "2026-11-25T10:00:00+03:00, payments from 2026-08-01",
        "settlements_sample.xml: 5 counterparties, 6 payments, 6 open documents; debt 477 300.50, overdue "
        "25 000.00, payments 269 700.00, outstanding on documents 477 300.50",
        "settlements_sample.xml: OK",
    ]


def test_every_problem_is_collected(tmp_path: Path) -> None:
    text = xml_export(
        counterparty_xml(debt="abc", payments=[payment_xml(sum="0"), payment_xml(PAY2, date="yesterday")]),
        counterparty_xml(CP2, attrs=' inn="123"', documents=[document_xml(outstanding="")]),
        counterparty_xml(CP1, payments=[payment_xml(PAY2)]),
        summary='  <Summary counterparties="4" payments="3" documents="1"/>\n',
    )
    report = check_file(write(tmp_path, "many.xml", text), name="many.xml", source_tz=MOSCOW)
    assert not report.ok
    assert report.problems == [
        f'many.xml: line 3, counterparty #1 (id={CP1}): field Debt: "abc" is not an amount: expected digits with a '
        "dot or comma before the kopecks, such as 12345.67 or 12 345,67 (no exponent, no dot between thousands)",
        f"many.xml: line 6, payment #1 of counterparty #1 (id={CP1}): field sum: 0 is not a payment sum: expected "
        "a non-zero amount (a refund is negative)",
        f'many.xml: line 7, payment #2 of counterparty #1 (id={CP1}): field date: "yesterday" is not a date: '
        "expected 2026-11-25, 2026-11-25T10:00:00[+03:00] or 25.11.2026[ 10:00:00]",
        f'many.xml: line 10, counterparty #2 (id={CP2}): field inn: "123" is not an INN: expected 10 or 12 digits',
        f'many.xml: line 13, document #1 of counterparty #2 (id={CP2}): field outstanding: "" means empty, but '
        "this field is required",
        "many.xml: line 22: field counterparties: the summary says 4 counterparties but the file holds 3: the "
        "export is cut short or damaged; ask 1C to export again",
        f"many.xml: line 16, counterparty #3 (id={CP1}): field id: counterparty id {CP1} is listed 2 times (line 3, "
        f"counterparty #1 (id={CP1}); line 16, counterparty #3 (id={CP1})); each counterparty must appear once in "
        "the file",
        f"many.xml: line 19, payment #1 of counterparty #3 (id={CP1}): field id: payment id {PAY2} is listed 2 "
        f"times (line 7, payment #2 of counterparty #1 (id={CP1}); line 19, payment #1 of counterparty #3 "
        f"(id={CP1})); payment ids must be unique in the file",
    ]
    assert (report.counterparties, report.payments, report.documents) == (3, 3, 1)
    # Totals count only the records without problems: the third counterparty.
    assert report.total_debt == Decimal("125000.00") and report.total_payments == Decimal("10000.00")
    assert format_report(report).splitlines()[-1] == "many.xml: 8 problem(s): the file would be rejected"


def test_a_broken_file_is_the_last_problem(tmp_path: Path) -> None:
    text = xml_export(counterparty_xml(debt="x"), counterparty_xml(CP2))
    report = check_file(write(tmp_path, "cut.xml", text[:-30]), name="cut.xml", source_tz=MOSCOW)
    assert len(report.problems) == 2
    assert report.problems[0].startswith(f"cut.xml: line 3, counterparty #1 (id={CP1}): field Debt:")
    assert report.problems[1].startswith("cut.xml: line ") and "cut short" in report.problems[1]
    report = check_file(write(tmp_path, "empty.json", ""), name="empty.json", source_tz=MOSCOW)
    assert report.problems == ["empty.json: empty file: 1C may still be writing it, or the export failed"]
    assert report.header is None and report.counterparties == 0


def test_bad_header_is_reported_and_records_still_checked(tmp_path: Path) -> None:
    text = json_export(counterparty_json(debt="-1"), formatVersion="2", mode="partial")
    report = check_file(write(tmp_path, "h.json", text), name="h.json", source_tz=MOSCOW)
    assert report.header is None
    assert report.problems == [
        'h.json: field formatVersion: format version "2" is not supported: this syncd reads version 1',
        'h.json: field mode: "partial" is not a mode: expected full or delta',
        f"h.json: counterparty #1 (id={CP1}): field debt: -1.00 is negative: expected 0 or more",
    ]


def test_duplicates_in_json_collected(tmp_path: Path) -> None:
    text = json_export(
        counterparty_json(payments=[payment_json(), payment_json()], openDocuments=[
            {"id": DOC1, "date": "2026-10-01", "outstanding": 1, "dueDate": "2026-11-01"},
            {"id": DOC1, "date": "2026-10-01", "outstanding": 1, "dueDate": "01.11.2026"}]),
        summary={"counterparties": 1, "payments": 2, "documents": 2})
    report = check_file(write(tmp_path, "d.json", text), name="d.json", source_tz=MOSCOW)
    assert report.problems == [
        f"d.json: payment #2 of counterparty #1 (id={CP1}): field id: payment id {PAY1} appears twice in this "
        "counterparty (first as payment #1); payment ids must be unique in the file",
        f"d.json: document #2 of counterparty #1 (id={CP1}): field id: document {DOC1} with due date 2026-11-01 "
        "appears twice in this counterparty; a document may appear once per due date",
    ]


def test_problems_beyond_a_thousand_are_counted_not_listed(tmp_path: Path) -> None:
    payments = [payment_json(f"{i:08x}-aa01-11ef-8c3e-00155d003f0a", kind="wire") for i in range(1005)]
    report = check_file(write(tmp_path, "k.json", json_export(counterparty_json(payments=payments))), name="k.json",
                        source_tz=MOSCOW)
    assert len(report.problems) == 1001
    assert report.problems[999].startswith(f"k.json: payment #1000 of counterparty #1 (id={CP1}): field kind:")
    assert report.problems[1000] == "k.json: … and 5 more problems (not listed)"
    assert format_report(report).splitlines()[-1] == "k.json: 1005 problem(s): the file would be rejected"


def test_hash_collision_is_not_reported() -> None:
    """Ids are compared by 64-bit hash first; equal hashes of different ids must not become a problem."""
    checker = Checker("c.xml", MOSCOW, dialect="json", strict=True)
    raws = [RawCounterparty(i, None, cp, cp, None, cp["payments"], ())
            for i, cp in enumerate([counterparty_json(payments=[payment_json()]),
                                    counterparty_json(CP2, payments=[payment_json(PAY2)])], 1)]
    for raw in raws:
        checker.counterparty(raw)
    # Pretend CP2 and PAY2 hashed like CP1 and PAY1: the second pass finds two different ids.
    checker.ids.counterparties.add(hash(CP1))
    checker.ids.payments.add(hash(PAY1))
    rescans: list[int] = []

    def rescan() -> Iterator[RawCounterparty]:
        rescans.append(1)
        return iter(raws[:1])

    checker.finish(rescan)  # strict: would raise on a reported duplicate
    assert rescans == [1] and checker.problems == []
    checker.close()


def _many_with_duplicates(tmp_path: Path) -> Path:
    """300 counterparties (900 ids) whose duplicates are far apart: the first ids come back at the end."""
    def guid(i: int, tail: str) -> str:
        return f"{i:08x}-{tail}-11ef-8c3e-00155d003f0a"

    parts = [counterparty_xml(guid(i, "cccc"), payments=[payment_xml(guid(2 * i, "aaaa")),
                                                          payment_xml(guid(2 * i + 1, "aaaa"))],
                              documents=[document_xml(guid(i, "dddd"))]) for i in range(299)]
    parts.append(counterparty_xml(guid(0, "cccc"), payments=[payment_xml(guid(1, "aaaa"))],
                                  documents=[document_xml(guid(2, "dddd"))]))
    return write(tmp_path, "many.xml", xml_export(*parts))


def _tiny_spills(monkeypatch: pytest.MonkeyPatch) -> list[HashSpill]:
    """Make every checker's spills write blocks of two hashes, so that a small file goes to disk."""
    made: list[HashSpill] = []

    def tiny() -> HashSpill:
        made.append(HashSpill(block=2))
        return made[-1]

    monkeypatch.setattr("syncd.contract.unique.HashSpill", tiny)
    return made


def test_duplicates_are_found_the_same_when_the_hashes_are_on_disk(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = _many_with_duplicates(tmp_path)
    in_memory = check_file(path, name="many.xml", source_tz=MOSCOW).problems
    with pytest.raises(ExportError) as caught, open_export(path, name="many.xml", source_tz=MOSCOW) as export:
        for _ in export.counterparties():
            pass
    assert [p.split(": field id: ")[1].split(" is listed")[0] for p in in_memory] == [
        "counterparty id 00000000-cccc-11ef-8c3e-00155d003f0a", "payment id 00000001-aaaa-11ef-8c3e-00155d003f0a",
        "document 00000002-dddd-11ef-8c3e-00155d003f0a with due date 2026-10-31"]
    made = _tiny_spills(monkeypatch)
    assert check_file(path, name="many.xml", source_tz=MOSCOW).problems == in_memory
    with pytest.raises(ExportError) as spilled, open_export(path, name="many.xml", source_tz=MOSCOW) as export:
        for _ in export.counterparties():
            pass
    assert str(spilled.value) == str(caught.value) == in_memory[0]
    assert len(made) == 12  # check_file and open_export: a checker each, and one more each for the rescan
    assert all(spill._end > 0 for spill in made[:3] + made[6:9])  # the first passes did write blocks
    assert all(spill._closed and spill._file is None for spill in made)


def test_spills_are_closed_on_early_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _many_with_duplicates(tmp_path)
    made = _tiny_spills(monkeypatch)
    with open_export(path, name="many.xml", source_tz=MOSCOW) as export:
        for count, _ in enumerate(export.counterparties(), 1):
            if count == 200:
                break
    assert len(made) == 3 and all(spill._end > 0 for spill in made)
    assert all(spill._closed and spill._file is None for spill in made)


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _stream(path: Path) -> tuple[int, int, float]:
    """Counterparties read, the most Counterparty objects alive at once, RSS growth in MB."""
    gc.collect()
    before = _rss_mb()
    alive = count = 0
    with open_export(path, name=path.name, source_tz=MOSCOW) as export:
        for count, _ in enumerate(export.counterparties(), 1):
            if count % 5000 == 0:
                alive = max(alive, sum(1 for o in gc.get_objects() if type(o) is Counterparty))
    return count, alive, _rss_mb() - before


def test_streaming_keeps_memory_flat(tmp_path: Path) -> None:
    n = 20_000
    ids = [f"{i:08x}-ceea-11e9-88ba-00155d003f0a" for i in range(n)]
    xml_path = tmp_path / "big.xml"
    with xml_path.open("w", encoding="utf-8") as out:
        out.write(xml_export(counterparty_xml(), summary=f'<Summary counterparties="{n + 1}" payments="{n}" '
                             'documents="0"/>').split("  <Counterparty")[0])
        out.write(counterparty_xml())
        for i, cid in enumerate(ids):
            out.write(counterparty_xml(cid, payments=[payment_xml(f"{i:08x}-aa01-11ef-8c3e-00155d003f0a",
                                                                  purpose="Оплата по счету " * 8)]))
        out.write(f'<Summary counterparties="{n + 1}" payments="{n}" documents="0"/></SettlementsExport>\n')
    size_mb = xml_path.stat().st_size / 2**20
    count, alive, grown = _stream(xml_path)
    assert count == n + 1
    assert alive <= 2  # the consumer's current record, nothing piles up
    assert grown < size_mb, (grown, size_mb)  # a whole lxml tree of this file takes several times its size

