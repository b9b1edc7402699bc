"""One file the database cannot store never stops the sync (issue 13, "poison pills").

A file that is valid by the contract but holds a value the target columns cannot take (a text over
the column's capacity, a character its charset or the connection's lacks) is refused before
anything is written, naming the record and the field; a data error the checks did not foresee
rolls the file back and rejects it. Either way the run goes on with the next file and exits 4.
Lost connections and lock timeouts are not the file's fault: they still fail the run (exit 7).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from syncd.errors import EXIT_DATABASE, EXIT_OK, EXIT_REJECTED
from syncd.run import RunResult
from tests.exports import counterparty, guid, json_export, xml_export
from tests.site import Site, make_site


@pytest.fixture
def site(bitrix_db_url: str, tmp_path: Path) -> Iterator[Site]:
    s = make_site(bitrix_db_url, tmp_path, migrated=True)
    yield s
    s.engine.dispose()


def _alter(site: Site, *statements: str) -> None:
    with site.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    site.engine.dispose()  # the next connection sees the new table definitions


def _payment(n: int, **values: Any) -> dict[str, Any]:
    return {"id": guid(n, 1), "date": "2026-11-20T12:00:00", "sum": "100.00", "number": f"П-{n}", **values}


def _poison_then_good(site: Site, poison: dict[str, Any], *, fmt: str = "xml") -> None:
    """A poison file and a good one generated an hour later, both complete on the source."""
    export = xml_export if fmt == "xml" else json_export
    site.drop(f"settlements_1000.{fmt}", export([counterparty(1), poison], generated_at="2026-11-25T10:00:00"))
    site.drop(f"settlements_1100.{fmt}", export([counterparty(1, debt="777.00"), counterparty(2)],
                                                generated_at="2026-11-25T11:00:00"))


def _assert_poison_rejected_good_applied(site: Site, result: RunResult, *expected: str, fmt: str = "xml") -> str:
    """The run rejected the poison file (naming `expected`), applied the good one, and exits 4."""
    by_name = {f.name: f for f in result.files}
    poison, good = by_name[f"settlements_1000.{fmt}"], by_name[f"settlements_1100.{fmt}"]
    assert result.error is None, result.error
    assert poison.status == "rejected", poison
    assert good.status == "applied", good
    assert result.exit_code == EXIT_REJECTED
    for part in expected:
        assert part in poison.message, poison.message
    assert float(site.balance()[guid(1)]["UF_DEBT"]) == 777.0  # the good, newer file is what the site shows
    assert guid(2) in site.balance()
    entries = {e["file_name"]: e for e in site.imports()}
    assert entries[f"settlements_1000.{fmt}"]["status"] == "rejected"
    assert entries[f"settlements_1100.{fmt}"]["status"] == "applied"
    assert (site.exports / "failed" / f"settlements_1000.{fmt}").exists()
    [kept] = list((site.state / "rejected").glob(f"*settlements_1000.{fmt}"))
    assert expected[0] in kept.with_name(kept.name + ".reason.txt").read_text(encoding="utf-8")
    # Nothing is stuck: the next run finds no file and succeeds.
    again = site.run()
    assert again.exit_code == EXIT_OK and again.files == [], again
    return poison.message


# ---------------------------------------------------------------- capacity: refused before writing


def test_purpose_over_the_text_column_is_rejected_naming_the_field(site: Site) -> None:
    poison = counterparty(3, payments=0)
    poison["payments"] = [_payment(1), _payment(2, purpose="x" * 70_000)]
    _poison_then_good(site, poison)

    message = _assert_poison_rejected_good_applied(
        site, site.run(), "field purpose", "70 000 bytes", "UF_PURPOSE", "65 535", "shorten it in 1C",
        "payment #2 of counterparty #2", "line ")
    assert guid(3) not in site.balance()  # the poison file wrote nothing
    assert guid(2, 1) not in site.payments()
    assert "xxxxxxxxxx" * 10 not in message  # the value itself is not dumped into the message


def test_capacity_counts_bytes_not_characters(site: Site) -> None:
    # 40,000 Cyrillic letters are 80,000 bytes in UTF-8: too much for TEXT although fewer than 65,535 characters.
    poison = counterparty(3, name="Щ" * 40_000)
    _poison_then_good(site, poison, fmt="json")

    _assert_poison_rejected_good_applied(site, site.run(), "field name", "80 000 bytes", "UF_NAME", "65 535",
                                         "counterparty #2", fmt="json")


def test_emoji_on_a_utf8mb3_table_is_rejected_naming_the_character(site: Site) -> None:
    # An older Bitrix database made in utf8 (utf8mb3): the blocks and syncd's own tables alike.
    _alter(site, *(f"ALTER TABLE {t} CONVERT TO CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci"
                   for t in ("contractor_balance", "syncd_imports")))
    _poison_then_good(site, counterparty(3, name="ООО «Ромашка» 😀"))

    _assert_poison_rejected_good_applied(
        site, site.run(), "field name", "'😀' (U+1F600)", "UF_NAME", "utf8mb3",
        "convert the table to utf8mb4 or remove the character in 1C")
    # The ledger keeps the reason without the character its table cannot hold.
    [entry] = [e for e in site.imports() if e["status"] == "rejected"]
    assert "'?' (U+1F600)" in entry["error"] and "ООО" not in entry["error"]


def test_rouble_sign_on_a_cp1251_table_is_rejected(site: Site) -> None:
    _alter(site, "ALTER TABLE contractor_payments CONVERT TO CHARACTER SET cp1251 COLLATE cp1251_general_ci")
    poison = counterparty(3)
    poison["payments"] = [_payment(1, purpose="Оплата 1 000 ₽ по счёту № 5")]
    _poison_then_good(site, poison)

    _assert_poison_rejected_good_applied(
        site, site.run(), "field purpose", "'₽' (U+20BD)", "UF_PURPOSE", "cp1251", "payment #1")
    # Cyrillic itself is fine in cp1251: the good file's names arrived intact.
    assert site.balance()[guid(2)]["UF_NAME"] == "ООО «Контрагент 2»"


def test_connection_charset_cp1251_rejects_what_it_cannot_send(bitrix_db_url: str, tmp_path: Path) -> None:
    url = bitrix_db_url.replace("charset=utf8mb4", "charset=cp1251")
    site = make_site(url, tmp_path, migrated=True)
    try:
        poison = counterparty(3)
        poison["payments"] = [_payment(1, purpose="Оплата 1 000 ₽")]
        _poison_then_good(site, poison)

        result = site.run()

        _assert_poison_rejected_good_applied(site, result, "field purpose", "'₽' (U+20BD)", "charset=cp1251",
                                             "database.url")
        with site.engine.connect() as conn:
            codes = [r[0] for r in conn.execute(text("SELECT exit_code FROM syncd_runs ORDER BY id"))]
        assert codes == [EXIT_REJECTED, EXIT_OK]  # the run was recorded
        # The ledger keeps the reason in what the connection can carry; the copy's reason file keeps '₽'.
        [entry] = [e for e in site.imports() if e["status"] == "rejected"]
        assert "'?' (U+20BD)" in entry["error"] and "field purpose" in entry["error"]
    finally:
        site.engine.dispose()


def test_a_varchar_column_counts_characters_and_bounded_fields_are_checked_too(site: Site) -> None:
    # Hand-made columns narrower than Bitrix's TEXT: a document number of 11 characters in VARCHAR(10),
    # and a sole trader's 12-digit INN in a VARCHAR(10) made for companies' INNs.
    _alter(site, "ALTER TABLE contractor_documents MODIFY UF_NUMBER VARCHAR(10)",
           "ALTER TABLE contractor_balance MODIFY UF_INN VARCHAR(10)")
    poison = counterparty(3, documents=1)
    poison["openDocuments"][0]["number"] = "СЧ-0000001"  # 10 characters, 19 bytes: fits
    poison["openDocuments"].append({**poison["openDocuments"][0], "id": guid(9, 2), "number": "СЧ-00000012"})
    _poison_then_good(site, poison)
    _assert_poison_rejected_good_applied(site, site.run(), "field number", "11 characters", "varchar(10)",
                                         "document #2 of counterparty #2")

    site.drop("settlements_1200.xml", xml_export([counterparty(4, inn="771234567890")],
                                                 generated_at="2026-11-25T12:00:00"))
    [outcome] = site.run().files
    assert outcome.status == "rejected" and "field inn: 12 characters" in outcome.message, outcome


def test_validate_offline_still_accepts_what_only_the_database_refuses(tmp_path: Path) -> None:
    from syncd.admin.validate import check_file

    poison = counterparty(3)
    poison["payments"] = [_payment(1, purpose="x" * 70_000 + " 😀 ₽")]
    path = tmp_path / "e.xml"
    path.write_bytes(xml_export([poison]))
    from zoneinfo import ZoneInfo
    assert check_file(path, name="e.xml", source_tz=ZoneInfo("Europe/Moscow")).ok


# ---------------------------------------------------------------- the backstop: a data error from the database


def test_data_error_from_the_database_rejects_the_file_and_the_run_goes_on(site: Site) -> None:
    # An admin made UF_SUM a DECIMAL(8,2) by hand: the checks do not know numeric capacities, MariaDB
    # refuses 12,345,678.00 (error 1264, out of range). The file is rolled back and rejected.
    _alter(site, "ALTER TABLE contractor_payments MODIFY UF_SUM DECIMAL(8,2)")
    poison = counterparty(3, payments=2)
    poison["payments"].append(_payment(9, sum="12345678.00"))
    _poison_then_good(site, poison)

    message = _assert_poison_rejected_good_applied(site, site.run(), "settlements_1000.xml", "1264", "UF_SUM",
                                                   "nothing was changed")
    assert guid(3) not in site.balance()
    assert not [p for p in site.payments() if p.startswith(guid(3000, 1)[:20])]
    assert "INSERT" not in message  # no SQL text (it may hold data) in a message


def test_lock_timeout_is_not_the_files_fault(site: Site, mariadb: Any) -> None:
    site.drop("settlements_1.xml", xml_export([counterparty(1)], generated_at="2026-11-24T10:00:00"))
    assert site.run().exit_code == EXIT_OK
    site.drop("settlements_2.xml", xml_export([counterparty(1, debt="5.00")], generated_at="2026-11-25T10:00:00"))
    with mariadb.admin() as cur:
        cur.execute("SET GLOBAL innodb_lock_wait_timeout = 1")
    holder = create_engine(site.cfg.database.url)
    try:
        site.engine.dispose()  # new connections take the short timeout
        with holder.connect() as conn, conn.begin():
            conn.execute(text("SELECT * FROM contractor_balance FOR UPDATE")).all()
            result = site.run()  # blocks on the held rows until the lock wait times out
    finally:
        holder.dispose()
        with mariadb.admin() as cur:
            cur.execute("SET GLOBAL innodb_lock_wait_timeout = 50")
    assert result.exit_code == EXIT_DATABASE, result
    assert "1205" in str(result.error)
    assert (site.exports / "settlements_2.xml").exists()  # stays for the next run
    assert [e["status"] for e in site.imports()] == ["applied"]
    assert site.run().exit_code == EXIT_OK  # and the next run applies it
    assert float(site.balance()[guid(1)]["UF_DEBT"]) == 5.0



# ---------------------------------------------------------------- which errors are the file's fault (pure logic)


def test_only_data_errors_are_the_files_fault() -> None:
    import pymysql
    from sqlalchemy.exc import DataError, OperationalError

    from syncd.plumbing.db import data_error_reason

    def wrapped(cls: type[Exception], code: int, text_: str) -> Exception:
        return cls("INSERT …", {}, pymysql.err.OperationalError(code, text_))

    too_long = data_error_reason(wrapped(DataError, 1406, "Data too long for column 'UF_PURPOSE' at row 1"))
    assert too_long is not None and "1406" in too_long and "UF_PURPOSE" in too_long and "INSERT" not in too_long
    assert data_error_reason(wrapped(OperationalError, 1366, "Incorrect string value")) is not None
    assert data_error_reason(wrapped(OperationalError, 1205, "Lock wait timeout exceeded")) is None
    assert data_error_reason(wrapped(OperationalError, 2013, "Lost connection to server during query")) is None
    assert data_error_reason(wrapped(OperationalError, 1213, "Deadlock found")) is None
    encoding = data_error_reason(_encode_error())
    assert encoding is not None and "'😀' (U+1F600)" in encoding and "database.url" in encoding


def _encode_error() -> UnicodeEncodeError:
    try:
        "INSERT … VALUES ('Ромашка 😀')".encode("cp1251")
    except UnicodeEncodeError as e:
        return e
    raise AssertionError("cp1251 has no emoji")
