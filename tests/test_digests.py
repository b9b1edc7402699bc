"""Counterparties unchanged since the last apply (digest of their bytes), first loads, INSERT rendering.

The reader digests each counterparty's own bytes; one whose digest the writer holds comes out as
`Unchanged`, unparsed, and is only confirmed. These tests pin what that must never change: the ids
of unchanged counterparties still count for the file's checks, a changed byte is never taken for
unchanged, a doubtful match falls back to a full parse, and every value reaches the database exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from syncd.bitrix import hlblock
from syncd.bitrix.hlblock import ApplyOptions, DigestIndex, file_digest_salt
from syncd.bitrix.users import Linker
from syncd.contract.records import Counterparty, Unchanged
from syncd.errors import ExportError
from syncd.formats import open_export
from tests.exports import counterparty, guid, json_export, xml_export
from tests.site import Site, make_site

MSK = ZoneInfo("Europe/Moscow")
EXPORTS = {"xml": xml_export, "json": json_export}


@pytest.fixture
def site(bitrix_db_url: str, tmp_path: Path) -> Iterator[Site]:
    s = make_site(bitrix_db_url, tmp_path, migrated=True)
    yield s
    s.engine.dispose()


def _index(known: list[str]) -> DigestIndex:
    # As the writer would have stored them: digest, balance row ID, UF_UPDATED_AT (2026-11-25 09:00) in
    # seconds since 1970, as digest_index reads it.
    stamp = int((datetime(2026, 11, 25, 9, 0) - datetime(1970, 1, 1)).total_seconds())
    rows = [(d, n, stamp) for n, d in enumerate(known, 1)]
    return DigestIndex(file_digest_salt(ApplyOptions(bitrix_tz=MSK), None, MSK), Linker(), rows)


def _changes(path: Path, index: DigestIndex) -> list[Counterparty | Unchanged]:
    with open_export(path, name=path.name, source_tz=MSK) as export:
        return list(export.changes(index))


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_a_known_counterparty_comes_out_unparsed_and_a_changed_one_in_full(tmp_path: Path, fmt: str) -> None:
    cps = [counterparty(1, payments=3, documents=2), counterparty(2, payments=1)]
    path = tmp_path / f"a.{fmt}"
    path.write_bytes(EXPORTS[fmt](cps))
    first = _changes(path, _index([]))
    assert all(type(r) is Counterparty and r.digest for r in first)
    digests = {r.id: r.digest for r in first if isinstance(r, Counterparty)}

    again = _changes(path, _index([digests[guid(1)]]))

    assert again[0] == Unchanged(guid(1), digests[guid(1)], payments=3, documents=2,
                                 ref=(1, datetime(2026, 11, 25, 9, 0)))
    assert type(again[1]) is Counterparty and again[1].digest == digests[guid(2)]
    # One changed value (the debt) is a new digest: parsed and compared in full.
    cps[0]["debt"] = "1000.01"
    path.write_bytes(EXPORTS[fmt](cps))
    changed = _changes(path, _index(list(digests.values())))
    assert type(changed[0]) is Counterparty and changed[0].digest != digests[guid(1)]
    assert type(changed[1]) is Unchanged


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_ids_of_unchanged_counterparties_still_count_for_the_whole_file(tmp_path: Path, fmt: str) -> None:
    cp1 = counterparty(1, payments=2)
    cp1["payments"][0]["id"] = cp1["payments"][0]["id"].upper()  # the same id, whatever its case
    path = tmp_path / f"a.{fmt}"
    path.write_bytes(EXPORTS[fmt]([cp1]))
    [record] = _changes(path, _index([]))
    assert isinstance(record, Counterparty) and record.digest
    # The second counterparty lists a payment id the unchanged first one already has.
    cp2 = counterparty(2, payments=1)
    cp2["payments"][0]["id"] = cp1["payments"][0]["id"].lower()
    path.write_bytes(EXPORTS[fmt]([cp1, cp2]))

    with pytest.raises(ExportError) as e:
        _changes(path, _index([record.digest]))

    assert f"payment id {guid(1000, 1)} is listed 2 times" in str(e.value)


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_documents_of_unchanged_counterparties_still_count_for_the_whole_file(tmp_path: Path, fmt: str) -> None:
    cp1 = counterparty(1, documents=2)
    path = tmp_path / f"a.{fmt}"
    path.write_bytes(EXPORTS[fmt]([cp1]))
    [record] = _changes(path, _index([]))
    assert isinstance(record, Counterparty) and record.digest
    # The second counterparty lists a document (same id, same due date) the unchanged first one has.
    cp2 = counterparty(2, documents=1)
    cp2["openDocuments"][0]["id"] = cp1["openDocuments"][1]["id"]
    path.write_bytes(EXPORTS[fmt]([cp1, cp2]))

    with pytest.raises(ExportError) as e:
        _changes(path, _index([record.digest]))

    assert f"document {guid(1001, 2)}" in str(e.value) and "2 times" in str(e.value)


def test_a_stored_digest_that_differs_in_any_bit_means_a_full_compare(site: Site) -> None:
    cps = [counterparty(n, payments=2, documents=1) for n in range(1, 4)]
    site.drop("settlements_1.xml", xml_export(cps, generated_at="2026-11-25T10:00:00"))
    assert site.run().exit_code == 0
    with site.engine.begin() as conn:
        # The same first half, a different second one: the index must not take it for unchanged.
        conn.execute(text("UPDATE syncd_counterparty_state SET digest = CONCAT(LEFT(digest, 16), REPEAT('0', 16)) "
                          "WHERE guid = :g"), {"g": guid(2)})
        conn.execute(text("UPDATE contractor_balance SET UF_DEBT = 1 WHERE UF_CONTRACTOR_XML_ID = :g"),
                     {"g": guid(2)})
    cps[2]["debt"] = "3000.00"
    site.drop("settlements_2.xml", xml_export(cps, generated_at="2026-11-25T11:00:00"))

    result = site.run()

    assert [(f.name, f.status) for f in result.files] == [("settlements_2.xml", "applied")]
    bal = site.balance()
    # Counterparty 2 was parsed and compared in full, which put the hand edit right; 3 took its new debt.
    assert (bal[guid(2)]["UF_DEBT"], bal[guid(3)]["UF_DEBT"]) == (1000.0, 3000.0)
    assert bal[guid(1)]["UF_UPDATED_AT"] == datetime(2026, 11, 25, 11, 0)  # 1, unchanged, confirmed
    [_, entry] = site.imports()
    assert (entry["balance_updated"], entry["balance_unchanged"]) == (2, 1)


def test_an_unchanged_counterparty_confirmed_by_a_newer_export_is_left_alone(site: Site) -> None:
    cps = [counterparty(n, payments=1) for n in range(1, 3)]
    site.drop("settlements_2.xml", xml_export(cps, generated_at="2026-11-25T11:00:00"))
    assert site.run().exit_code == 0
    # A late delta as of 10:00 with the same bytes for counterparty 1: its digest is known, but its rows
    # are newer than the file, so they keep their time.
    site.drop("settlements_1.xml", xml_export(cps[:1], generated_at="2026-11-25T10:00:00", mode="delta"))

    [f] = site.run().files

    assert f.status == "applied" and f.counts is not None
    assert (f.counts.skipped_newer, f.counts.balance.unchanged) == (1, 1)
    assert site.balance()[guid(1)]["UF_UPDATED_AT"] == datetime(2026, 11, 25, 11, 0)


def test_values_reach_the_database_exactly_whatever_characters_they_hold(site: Site) -> None:
    awkward = "ООО \"Рога & Копыта\" 'Север' 100% \\ скидка; DROP TABLE x; --"
    purpose = "Оплата 20%, НДС 'включён'\nвторая строка \\n\t конец"
    cp = counterparty(1, payments=1, documents=1, name=awkward)
    cp["payments"][0]["purpose"] = purpose
    cp["payments"][0]["number"] = "%s%d'%"
    cp["openDocuments"][0]["number"] = "\\x00'\""
    site.drop("settlements_1.json", json_export([cp]))

    assert site.run().exit_code == 0

    assert site.balance()[guid(1)]["UF_NAME"] == awkward
    payment = site.payments()[guid(1000, 1)]
    assert (payment["UF_PURPOSE"], payment["UF_NUMBER"]) == (purpose, "%s%d'%")
    assert site.documents()[0]["UF_NUMBER"] == "\\x00'\""


@pytest.mark.parametrize(("repeat", "found_by"), [(2, "an id is listed more than once"), (11, "is listed 2 times")])
def test_a_payment_id_repeated_across_batches_of_a_first_load_rejects_the_file(
    site: Site, monkeypatch: pytest.MonkeyPatch, repeat: int, found_by: str
) -> None:
    # Two counterparties per batch: the repeat meets its twin in the database, not in its own batch.
    # In the second batch the unique key finds it (its error surfaces a few statements later, while
    # batches are still to come); in the last one the reader's check at the end of the file comes
    # first. Either way the id is named and nothing is written.
    monkeypatch.setattr(hlblock, "BATCH", 2)
    cps = [counterparty(n, payments=1) for n in range(1, 13)]
    cps[repeat]["payments"][0]["id"] = cps[0]["payments"][0]["id"]
    site.drop("settlements_1.xml", xml_export(cps))

    result = site.run()

    [f] = result.files
    assert f.status == "rejected"
    assert guid(1000, 1) in f.message and found_by in f.message, f.message
    assert site.snapshot() == ([], [], [])
    assert (site.exports / "failed" / "settlements_1.xml").exists()


def test_a_large_export_delivered_again_is_skipped_from_its_header_without_downloading(site: Site) -> None:
    # Over PEEK_ABOVE (1 MiB), so the runner reads the first 64 KiB before it downloads anything.
    content = xml_export([counterparty(n, payments=10, documents=2) for n in range(1, 600)])
    assert len(content) > 1 << 20
    site.drop("settlements_1.xml", content)
    assert site.run().exit_code == 0
    site.drop("settlements_1_again.xml", content)

    result = site.run()

    assert [(f.name, f.status) for f in result.files] == [("settlements_1_again.xml", "duplicate")]
    assert "already applied as settlements_1.xml" in result.files[0].message
    [first, again] = site.imports()
    # The sha256 of a file that was never read is not known: the ledger says so with an empty value.
    assert (again["status"], again["sha256"], first["sha256"] != "") == ("duplicate", "", True)
    assert (site.exports / "processed" / "settlements_1_again.xml").exists()


def test_each_file_of_a_run_is_judged_by_the_digests_the_file_before_it_left(site: Site) -> None:
    # Files over 1 MiB, peeked at and all downloaded before the first is applied. The run's second
    # file puts counterparty 1 back as the first run left it: judged by digests read before the run's
    # first file was applied (at its download, say), it would look unchanged and keep that file's debt.
    def export(debt: str, generated_at: str) -> bytes:
        cps = [counterparty(n, payments=10, documents=2) for n in range(1, 600)]
        cps[0]["debt"] = debt
        content = xml_export(cps, generated_at=generated_at)
        assert len(content) > 1 << 20
        return content

    site.drop("settlements_1.xml", export("100.00", "2026-11-25T09:00:00"))
    assert site.run().exit_code == 0
    site.drop("settlements_2.xml", export("200.00", "2026-11-25T10:00:00"))
    site.drop("settlements_3.xml", export("100.00", "2026-11-25T11:00:00"))

    result = site.run()

    assert [(f.name, f.status) for f in result.files] == [("settlements_2.xml", "applied"),
                                                           ("settlements_3.xml", "applied")]
    second, third = (f.counts for f in result.files)
    assert second is not None and third is not None
    assert (second.balance.updated, second.balance.unchanged) == (1, 598)
    assert (third.balance.updated, third.balance.unchanged) == (1, 598)
    assert site.balance()[guid(1)]["UF_DEBT"] == 100.0
