"""Applying exports end to end: a local export folder → real MariaDB HL-block tables and the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from tests.exports import counterparty, guid, json_export, xml_export
from tests.site import Site, make_site


@pytest.fixture
def site(bitrix_db_url: str, tmp_path: Path) -> Iterator[Site]:
    s = make_site(bitrix_db_url, tmp_path, migrated=True)
    yield s
    s.engine.dispose()


def test_first_full_export_fills_the_three_blocks(site: Site) -> None:
    user = site.add_user("buyer", fields={"UF_1C_CONTRACTOR_ID": guid(1).upper() + " "})
    cps = [
        counterparty(1, debt="125 000,00", overdueDebt="25000.00", creditLimit="500000", payable="0",
                     currency="RUB", kpp="770101001", payments=2, documents=1),
        counterparty(2, debt="0", payments=0, documents=0),
    ]
    site.drop("settlements_20261125_100000.xml", xml_export(cps, export_id=guid(77, 3), payments_from="2026-08-01"))

    result = site.run()

    assert result.exit_code == 0, result
    assert [(f.name, f.status) for f in result.files] == [("settlements_20261125_100000.xml", "applied")]
    bal = site.balance()
    assert set(bal) == {guid(1), guid(2)}
    b1 = bal[guid(1)]
    assert b1["UF_BITRIX_USER_ID"] == user  # linked through UF_1C_CONTRACTOR_ID, case and spaces ignored
    assert (b1["UF_DEBT"], b1["UF_OVERDUE_DEBT"], b1["UF_CREDIT_LIMIT"], b1["UF_PAYABLE"]) == (
        125000.0, 25000.0, 500000.0, 0.0)
    assert b1["UF_UPDATED_AT"] == datetime(2026, 11, 25, 10, 0, 0)
    assert (b1["UF_INN"], b1["UF_KPP"], b1["UF_NAME"], b1["UF_CURRENCY"]) == (
        "7700000001", "770101001", "ООО «Контрагент 1»", "RUB")
    # No LastPayment in the file: the newest payment of the counterparty (payments on the 1st and 2nd).
    assert (b1["UF_LAST_PAYMENT_DATE"], b1["UF_LAST_PAYMENT_SUM"]) == (date(2026, 11, 2), 101.0)
    b2 = bal[guid(2)]
    assert b2["UF_BITRIX_USER_ID"] is None
    assert b2["UF_CREDIT_LIMIT"] is None  # absent = no limit known, not a limit of 0
    assert b2["UF_LAST_PAYMENT_DATE"] is None
    pays = site.payments()
    p = pays[guid(1000, 1)]
    assert (p["UF_CONTRACTOR_XML_ID"], p["UF_BITRIX_USER_ID"], p["UF_SUM"], p["UF_NUMBER"], p["UF_KIND"]) == (
        guid(1), user, 100.0, "00УТ-000100", "bank")
    assert p["UF_DATE"] == datetime(2026, 11, 1, 12, 0)
    [doc] = site.documents()
    assert (doc["UF_DOCUMENT_XML_ID"], doc["UF_DUE_DATE"], doc["UF_OUTSTANDING"], doc["UF_AMOUNT"]) == (
        guid(1000, 2), date(2026, 10, 31), 250.0, 500.0)
    [entry] = site.imports()
    assert entry["status"] == "applied"
    assert entry["export_id"] == guid(77, 3)
    assert (entry["balance_inserted"], entry["payments_inserted"], entry["documents_inserted"]) == (2, 2, 1)
    assert entry["generated_at"] == datetime(2026, 11, 25, 7, 0)  # the ledger keeps UTC
    # The file left the folder for processed/, and a copy stays in the state dir.
    assert not (site.exports / "settlements_20261125_100000.xml").exists()
    assert (site.exports / "processed" / "settlements_20261125_100000.xml").exists()
    assert (site.state / "applied" / "settlements_20261125_100000.xml").exists()


def test_same_content_again_is_a_duplicate_and_changes_nothing(site: Site) -> None:
    content = xml_export([counterparty(1, payments=3, documents=2)])
    site.drop("settlements_1.xml", content)
    assert site.run().exit_code == 0
    before = site.snapshot()
    site.drop("settlements_1_again.xml", content)

    result = site.run()

    assert [(f.name, f.status) for f in result.files] == [("settlements_1_again.xml", "duplicate")]
    assert "already applied as settlements_1.xml" in result.files[0].message
    assert result.exit_code == 0
    assert site.snapshot() == before
    assert [e["status"] for e in site.imports()] == ["applied", "duplicate"]


def test_same_export_id_with_other_bytes_is_a_duplicate(site: Site) -> None:
    site.drop("a.xml".replace("a", "settlements_a"), xml_export([counterparty(1)], export_id=guid(5, 3)))
    site.run()
    site.drop("settlements_b.json", json_export([counterparty(1, debt="999.00")], export_id=guid(5, 3)))
    result = site.run()
    assert [f.status for f in result.files] == ["duplicate"]
    assert site.balance()[guid(1)]["UF_DEBT"] == 1000.0


def test_only_changed_rows_are_written(site: Site) -> None:
    cps = [counterparty(n, payments=3, documents=2) for n in range(1, 11)]
    site.drop("settlements_1.xml", xml_export(cps, generated_at="2026-11-25T10:00:00"))
    site.run()
    payments_before = site.payments()
    cps[3] = counterparty(4, debt="4444.44", payments=3, documents=2)
    cps[3]["payments"][0]["sum"] = "555.55"
    site.drop("settlements_2.xml", xml_export(cps, generated_at="2026-11-25T11:00:00"))

    result = site.run()

    [f] = result.files
    assert f.status == "applied" and f.counts is not None
    assert (f.counts.balance.updated, f.counts.balance.unchanged) == (1, 9)
    assert (f.counts.payments.updated, f.counts.payments.unchanged, f.counts.payments.inserted) == (1, 29, 0)
    assert (f.counts.documents.updated, f.counts.documents.unchanged, f.counts.documents.deleted) == (0, 20, 0)
    after = site.payments()
    changed = guid(4000, 1)
    assert after[changed]["UF_SUM"] == 555.55
    assert after[changed]["UF_UPDATED_AT"] == datetime(2026, 11, 25, 11, 0)
    untouched = guid(5000, 1)
    assert after[untouched] == payments_before[untouched]  # not rewritten: still as of the first export
    # Every listed counterparty is confirmed as of the new export, changed or not.
    assert {r["UF_UPDATED_AT"] for r in site.balance().values()} == {datetime(2026, 11, 25, 11, 0)}
    entry = site.imports()[-1]
    assert (entry["balance_updated"], entry["payments_updated"], entry["payments_unchanged"]) == (1, 1, 29)


def test_pending_files_apply_in_generated_at_order_and_older_full_is_superseded(site: Site) -> None:
    # Names sort the other way round from the as-of times.
    site.drop("settlements_a.xml", xml_export([counterparty(1, debt="300.00")], generated_at="2026-11-25T12:00:00"))
    site.drop("settlements_b.xml", xml_export([counterparty(1, debt="100.00")], generated_at="2026-11-25T10:00:00"))
    result = site.run()
    assert [(f.name, f.status) for f in result.files] == [
        ("settlements_b.xml", "applied"), ("settlements_a.xml", "applied")]
    assert site.balance()[guid(1)]["UF_DEBT"] == 300.0

    site.drop("settlements_c.xml", xml_export([counterparty(1, debt="200.00")], generated_at="2026-11-25T11:00:00"))
    result = site.run()
    assert [(f.name, f.status) for f in result.files] == [("settlements_c.xml", "superseded")]
    assert site.balance()[guid(1)]["UF_DEBT"] == 300.0


def test_late_delta_changes_only_rows_it_is_newer_for(site: Site) -> None:
    site.drop("settlements_1.xml", xml_export([counterparty(1, debt="100.00")], generated_at="2026-11-25T10:00:00"))
    site.run()
    site.drop("settlements_2.xml", xml_export([counterparty(2, debt="50.00")], mode="delta",
                                              generated_at="2026-11-25T12:00:00"))
    site.run()
    # A delta taken at 11:00 arrives late: counterparty 2 is newer already, counterparty 1 is not.
    late = [counterparty(1, debt="111.00"), counterparty(2, debt="1.00")]
    site.drop("settlements_3.xml", xml_export(late, mode="delta", generated_at="2026-11-25T11:00:00"))
    result = site.run()
    assert [f.status for f in result.files] == ["applied"]
    bal = site.balance()
    assert bal[guid(1)]["UF_DEBT"] == 111.0
    assert bal[guid(2)]["UF_DEBT"] == 50.0
    assert bal[guid(2)]["UF_UPDATED_AT"] == datetime(2026, 11, 25, 12, 0)


def test_delta_changes_only_listed_counterparties(site: Site) -> None:
    site.drop("settlements_1.xml", xml_export([counterparty(1), counterparty(2, documents=1)]))
    site.run()
    site.drop("settlements_2.xml", xml_export([counterparty(1, debt="7.00")], mode="delta",
                                              generated_at="2026-11-25T11:00:00"))
    site.run()
    bal = site.balance()
    assert (bal[guid(1)]["UF_DEBT"], bal[guid(2)]["UF_DEBT"]) == (7.0, 1000.0)
    assert len(site.documents()) == 1


@pytest.mark.parametrize("on_missing", ["zero", "delete", "keep"])
def test_counterparty_missing_from_a_full_export(bitrix_db_url: str, tmp_path: Path, on_missing: str) -> None:
    site = make_site(
        bitrix_db_url, tmp_path, migrated=True, bitrix={"on_missing": on_missing, "max_missing_ratio": 0.5}
    )
    cps = [counterparty(n, documents=2) for n in range(1, 5)]
    site.drop("settlements_1.xml", xml_export(cps, generated_at="2026-11-25T10:00:00"))
    site.run()
    site.drop("settlements_2.xml", xml_export(cps[:3], generated_at="2026-11-25T11:00:00"))

    result = site.run()

    assert result.exit_code == 0
    bal = site.balance()
    gone_docs = [d for d in site.documents() if d["UF_CONTRACTOR_XML_ID"] == guid(4)]
    if on_missing == "zero":
        row = bal[guid(4)]
        assert (row["UF_DEBT"], row["UF_OVERDUE_DEBT"], row["UF_PAYABLE"]) == (0.0, 0.0, 0.0)
        assert row["UF_UPDATED_AT"] == datetime(2026, 11, 25, 11, 0)
        assert gone_docs == []
    elif on_missing == "delete":
        assert guid(4) not in bal
        assert gone_docs == []
    else:
        assert bal[guid(4)]["UF_DEBT"] == 1000.0
        assert len(gone_docs) == 2
    site.engine.dispose()


def test_guard_holds_a_short_export_until_approved(site: Site) -> None:
    cps = [counterparty(n) for n in range(1, 11)]
    site.drop("settlements_1.xml", xml_export(cps, generated_at="2026-11-25T10:00:00"))
    site.run()
    before = site.snapshot()
    short = xml_export(cps[:5], export_id=guid(9, 3), generated_at="2026-11-25T11:00:00")
    site.drop("settlements_2.xml", short)

    result = site.run()

    assert result.exit_code == 5
    [f] = result.files
    assert f.status == "held"
    assert "5 of 10 counterparties (50%, more than max_missing_ratio 20%)" in f.message
    assert f"syncd run-once --approve {guid(9, 3)}" in f.message
    assert site.snapshot() == before
    assert (site.exports / "settlements_2.xml").exists()  # stays on the source for the approval
    # Held again on the next run: still one ledger entry for it.
    assert site.run().exit_code == 5
    assert [e["status"] for e in site.imports()] == ["applied", "held"]

    result = site.run(approve=["settlements_2.xml"])

    assert result.exit_code == 0
    assert [f.status for f in result.files] == ["applied"]
    assert site.balance()[guid(10)]["UF_DEBT"] == 0.0


def test_empty_full_export_is_held(site: Site) -> None:
    site.drop("settlements_1.xml", xml_export([counterparty(1)]))
    site.run()
    site.drop("settlements_2.xml", xml_export([], generated_at="2026-11-25T11:00:00"))
    result = site.run()
    assert result.exit_code == 5
    assert "lists no counterparty while the site knows 1" in result.files[0].message
    assert site.balance()[guid(1)]["UF_DEBT"] == 1000.0


def test_payments_window_deletes_cancelled_payments_only_inside_it(site: Site) -> None:
    cp = counterparty(1, payments=0)
    cp["payments"] = [
        {"id": guid(1, 1), "date": "2026-07-15", "sum": "10.00"},  # before the window
        {"id": guid(2, 1), "date": "2026-09-01", "sum": "20.00"},
        {"id": guid(3, 1), "date": "2026-10-01", "sum": "30.00"},
    ]
    site.drop("settlements_1.xml", xml_export([cp], generated_at="2026-11-25T10:00:00"))
    site.run()
    cp["payments"] = [cp["payments"][2]]  # 2 was cancelled in 1C; 1 is outside the window
    site.drop("settlements_2.xml", xml_export([cp], generated_at="2026-11-25T11:00:00", payments_from="2026-08-01"))

    result = site.run()

    assert result.files[0].counts is not None and result.files[0].counts.payments.deleted == 1
    assert set(site.payments()) == {guid(1, 1), guid(3, 1)}
    # Without a window nothing is deleted.
    cp["payments"] = []
    site.drop("settlements_3.xml", xml_export([cp], generated_at="2026-11-25T12:00:00"))
    site.run()
    assert set(site.payments()) == {guid(1, 1), guid(3, 1)}


def test_open_documents_are_exactly_the_listed_ones(site: Site) -> None:
    cp = counterparty(1, documents=3)
    cp["openDocuments"].append(dict(cp["openDocuments"][0], dueDate="2026-11-30", outstanding="10.00"))
    site.drop("settlements_1.xml", xml_export([cp], generated_at="2026-11-25T10:00:00"))
    site.run()
    assert len(site.documents()) == 4  # one document with two schedule stages
    cp["openDocuments"] = cp["openDocuments"][1:2]
    site.drop("settlements_2.xml", xml_export([cp], generated_at="2026-11-25T11:00:00"))
    site.run()
    assert [d["UF_DOCUMENT_XML_ID"] for d in site.documents()] == [guid(1001, 2)]


def test_last_payment_from_the_export_wins(site: Site) -> None:
    cp = counterparty(1, payments=2, lastPayment={"date": "2026-11-20", "sum": "777,77"})
    site.drop("settlements_1.xml", xml_export([cp]))
    site.run()
    row = site.balance()[guid(1)]
    assert (row["UF_LAST_PAYMENT_DATE"], row["UF_LAST_PAYMENT_SUM"]) == (date(2026, 11, 20), 777.77)


def test_last_payment_is_the_newest_incoming_one_across_files_without_a_payments_window(site: Site) -> None:
    # No paymentsFrom: the file need not list every payment, so the newest one may be an older file's.
    # On the first load the block is empty and the file's own payments are the answer.
    refunds_only = counterparty(2, payments=1)
    refunds_only["payments"][0]["sum"] = "-50.00"
    site.drop("settlements_1.xml", xml_export([counterparty(1, payments=3), refunds_only], mode="delta",
                                               generated_at="2026-11-25T10:00:00"))
    site.run()
    bal = site.balance()
    assert (bal[guid(1)]["UF_LAST_PAYMENT_DATE"], bal[guid(1)]["UF_LAST_PAYMENT_SUM"]) == (date(2026, 11, 3), 102.0)
    assert (bal[guid(2)]["UF_LAST_PAYMENT_DATE"], bal[guid(2)]["UF_LAST_PAYMENT_SUM"]) == (None, None)

    older = counterparty(1, payments=1, debt="5.00")
    older["payments"][0].update(id=guid(5000, 1), date="2026-10-01T09:00:00", sum="7.00")
    site.drop("settlements_2.xml", xml_export([older], mode="delta", generated_at="2026-11-25T11:00:00"))
    site.run()
    row = site.balance()[guid(1)]
    assert row["UF_DEBT"] == 5.0
    assert (row["UF_LAST_PAYMENT_DATE"], row["UF_LAST_PAYMENT_SUM"]) == (date(2026, 11, 3), 102.0)


def test_datetimes_move_from_the_source_zone_to_the_bitrix_zone(bitrix_db_url: str, tmp_path: Path) -> None:
    # Source in UTC+5; Bitrix in Moscow, UTC+3.
    site = make_site(bitrix_db_url, tmp_path, migrated=True, source={"timezone": "Asia/Yekaterinburg"})
    cp = counterparty(1, payments=0)
    cp["payments"] = [
        {"id": guid(1, 1), "date": "2026-11-20T12:30:00", "sum": "1.00"},
        {"id": guid(2, 1), "date": "2026-11-20T12:30:00Z", "sum": "1.00"},
        {"id": guid(3, 1), "date": "21.11.2026", "sum": "1.00"},
    ]
    site.drop("settlements_1.json", json_export([cp], generated_at="2026-11-25T10:00:00"))
    assert site.run().exit_code == 0
    pays = site.payments()
    assert pays[guid(1, 1)]["UF_DATE"] == datetime(2026, 11, 20, 10, 30)
    assert pays[guid(2, 1)]["UF_DATE"] == datetime(2026, 11, 20, 15, 30)
    assert pays[guid(3, 1)]["UF_DATE"] == datetime(2026, 11, 20, 22, 0)  # midnight in Yekaterinburg
    assert site.balance()[guid(1)]["UF_UPDATED_AT"] == datetime(2026, 11, 25, 8, 0)
    site.engine.dispose()


def test_a_file_still_being_written_waits(site: Site) -> None:
    import time

    site.drop("settlements_new.xml", xml_export([counterparty(1)]), mtime=time.time())
    site.drop("settlements_x.xml.part", b"<Settl")
    result = site.run()
    assert [(f.name, f.status) for f in result.files] == [("settlements_new.xml", "waiting")]
    assert "min_age" in result.files[0].message
    assert result.exit_code == 0
    assert site.balance() == {}


def test_a_failing_relink_does_not_keep_the_files_from_being_applied(site: Site) -> None:
    from sqlalchemy import text as sql

    site.drop("settlements_1.xml", xml_export([counterparty(1, documents=1)], generated_at="2026-11-25T10:00:00"))
    assert site.run().exit_code == 0
    user = site.add_user("late-registrant", fields={"UF_1C_CONTRACTOR_ID": guid(1)})
    with site.engine.begin() as conn:  # the relink's UPDATE of counterparty 1's balance row fails
        conn.execute(sql("CREATE TRIGGER refuse_relink BEFORE UPDATE ON contractor_balance FOR EACH ROW "
                         "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no updates today'"))
    site.drop("settlements_2.xml", xml_export([counterparty(2)], generated_at="2026-11-25T11:00:00", mode="delta"))

    result = site.run()

    assert [(f.name, f.status) for f in result.files] == [("settlements_2.xml", "applied")]
    assert result.exit_code == 7 and "relinking the blocks to changed links failed" in str(result.error)
    assert site.balance()[guid(1)]["UF_BITRIX_USER_ID"] is None
    with site.engine.begin() as conn:
        conn.execute(sql("DROP TRIGGER refuse_relink"))

    again = site.run()  # the relink is retried: its fingerprint was not stored

    assert again.exit_code == 0 and again.links is not None
    assert site.balance()[guid(1)]["UF_BITRIX_USER_ID"] == user


def test_a_changed_link_reaches_all_blocks_on_the_next_run_without_a_file(site: Site) -> None:
    site.drop("settlements_1.xml", xml_export([counterparty(1, payments=2, documents=1)]))
    first = site.run()
    assert first.links is not None  # the first run records the links it saw
    assert site.balance()[guid(1)]["UF_BITRIX_USER_ID"] is None

    quiet = site.run()
    assert quiet.links is None  # links unchanged: no relink

    user = site.add_user("late-registrant", fields={"UF_1C_CONTRACTOR_ID": guid(1)})
    result = site.run()

    assert result.exit_code == 0 and result.files == []
    assert result.links is not None and result.links.changed == 4
    assert site.balance()[guid(1)]["UF_BITRIX_USER_ID"] == user
    assert {p["UF_BITRIX_USER_ID"] for p in site.payments().values()} == {user}
    assert {d["UF_BITRIX_USER_ID"] for d in site.documents()} == {user}


def test_what_1c_really_writes_is_applied(site: Site) -> None:
    """windows-1251 with CRLF, a BOM, `12 345,67`, empty dates, upper-case GUIDs, .gz and a one-file .zip."""
    import gzip
    import io
    import zipfile
    from importlib import resources

    samples = resources.files("syncd") / "samples"
    site.drop("settlements_1.xml", samples.joinpath("settlements_sample_cp1251.xml").read_bytes())
    cp = counterparty(7, debt="12\u00a0345,67", payments=1, documents=1)
    cp["id"] = cp["id"].upper()
    cp["openDocuments"][0]["dueDate"] = "0001-01-01T00:00:00"
    cp["openDocuments"][0]["amount"] = ""
    bom_crlf = b"\xef\xbb\xbf" + xml_export([cp], generated_at="2026-11-25T11:00:00", mode="delta").replace(
        b"\n", b"\r\n")
    site.drop("settlements_2.xml.gz", gzip.compress(bom_crlf))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("inner.json", json_export([counterparty(8)], generated_at="2026-11-25T12:00:00", mode="delta"))
    site.drop("settlements_3.zip", buf.getvalue())

    result = site.run()

    assert [f.status for f in result.files] == ["applied", "applied", "applied"], result.files
    bal = site.balance()
    row = bal[guid(7)]  # kept lower case
    assert row["UF_DEBT"] == 12345.67
    [doc] = [d for d in site.documents() if d["UF_CONTRACTOR_XML_ID"] == guid(7)]
    assert doc["UF_DUE_DATE"] is None and doc["UF_AMOUNT"] is None
    assert guid(8) in bal
    names = {r["UF_NAME"] for r in bal.values()}
    assert any(n and "«" in n for n in names - {row["UF_NAME"], bal[guid(8)]["UF_NAME"]})  # Cyrillic from cp1251


def test_unchanged_counterparties_are_skipped_by_digest_and_compared_again_once_it_expires(site: Site) -> None:
    from sqlalchemy import text as sql

    cps = [counterparty(n, payments=2, documents=1) for n in range(1, 4)]
    site.drop("settlements_1.xml", xml_export(cps, generated_at="2026-11-25T10:00:00"))
    site.run()
    with site.engine.begin() as conn:  # an admin edits a row by hand in the Bitrix admin
        conn.execute(sql("UPDATE contractor_balance SET UF_DEBT = 1 WHERE UF_CONTRACTOR_XML_ID = :g"), {"g": guid(2)})
    site.drop("settlements_2.xml", xml_export(cps, generated_at="2026-11-25T11:00:00"))

    [f] = site.run().files

    # The file says what syncd wrote last time: not read back, only confirmed as of the new export.
    assert f.counts is not None and f.counts.balance.unchanged == 3 and f.counts.payments.unchanged == 6
    row = site.balance()[guid(2)]
    assert (row["UF_DEBT"], row["UF_UPDATED_AT"]) == (1.0, datetime(2026, 11, 25, 11, 0))

    with site.engine.begin() as conn:  # a day later the digests are no longer trusted
        conn.execute(sql("UPDATE syncd_counterparty_state SET checked_at = '2026-01-01 00:00:00'"))
    site.drop("settlements_3.xml", xml_export(cps, generated_at="2026-11-25T12:00:00"))

    [f] = site.run().files

    assert f.counts is not None and (f.counts.balance.updated, f.counts.balance.unchanged) == (1, 2)
    assert site.balance()[guid(2)]["UF_DEBT"] == 1000.0  # the full compare put the hand edit right


def test_a_counterparty_back_after_being_zeroed_is_compared_in_full(site: Site) -> None:
    cps = [counterparty(n, documents=1) for n in range(1, 6)]
    site.drop("settlements_1.xml", xml_export(cps, generated_at="2026-11-25T10:00:00"))
    site.run()
    site.drop("settlements_2.xml", xml_export(cps[1:], generated_at="2026-11-25T11:00:00"))
    site.run()
    assert site.balance()[guid(1)]["UF_DEBT"] == 0.0
    site.drop("settlements_3.xml", xml_export(cps, generated_at="2026-11-25T12:00:00"))

    [f] = site.run().files

    assert f.counts is not None and f.counts.balance.updated == 1 and f.counts.documents.inserted == 1
    assert site.balance()[guid(1)]["UF_DEBT"] == 1000.0

