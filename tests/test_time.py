"""Time can never freeze or wreck the balances (issue 13).

Datetimes at the edge of what can be converted and stored are refused by the checks; an export
dated ahead of the host's clock is held; as-of times are compared in UTC, so a DST change cannot
make a newer export look older; an as-of stamp in the future is not trusted; confirming unchanged
counterparties does not lock their balance rows for the whole apply.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from syncd.cli import cli
from syncd.run import runner as runner_mod
from tests.exports import counterparty, guid, json_export, xml_export
from tests.site import Site, make_site

FUTURE = "2062-11-25T10:00:00"


@pytest.fixture
def site(bitrix_db_url: str, tmp_path: Path) -> Iterator[Site]:
    s = make_site(bitrix_db_url, tmp_path, migrated=True)
    yield s
    s.engine.dispose()


@pytest.fixture
def berlin(bitrix_db_url: str, tmp_path: Path) -> Iterator[Site]:
    s = make_site(bitrix_db_url, tmp_path, migrated=True, source={"timezone": "Europe/Berlin"},
                  bitrix={"timezone": "Europe/Berlin"})
    yield s
    s.engine.dispose()


def _ago(hours: float) -> str:
    """An ISO datetime with offset `hours` before now: a correct export's generatedAt."""
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0).isoformat()


# -- 1. datetimes at the edge ----------------------------------------------------------------------

EDGE_CASES = {
    "payment_before_year_1": (
        xml_export([counterparty(1, payments=1) | {"payments": [
            {"id": guid(1, 1), "date": "0001-01-01T01:00:00", "sum": "100.00"}]}]),
        "payment #1 of counterparty #1", "field date"),
    "generated_at_after_9999": (
        json_export([counterparty(1)], generated_at="9999-12-31T23:00:00-05:00"), "", "field generatedAt"),
    "document_before_1000": (
        xml_export([counterparty(1) | {"openDocuments": [
            {"id": guid(1, 2), "date": "0999-10-01", "outstanding": "1.00"}]}]),
        "document #1 of counterparty #1", "field date"),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_validate_refuses_datetimes_that_cannot_be_converted_or_stored(case: str, tmp_path: Path) -> None:
    content, where, field = EDGE_CASES[case]
    path = tmp_path / f"edge.{'json' if content.startswith(b'{') else 'xml'}"
    path.write_bytes(content)

    result = CliRunner().invoke(cli, ["validate", "--timezone", "Europe/Moscow", "--bitrix-timezone",
                                      "America/New_York", str(path)])

    assert result.exit_code == 4, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    problem = [line for line in result.output.splitlines() if "out of range" in line]
    assert problem, result.output
    assert where in problem[0] and field in problem[0], problem


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_run_once_rejects_edge_datetimes_with_exit_4_and_writes_nothing(case: str, bitrix_db_url: str,
                                                                         tmp_path: Path) -> None:
    content, where, field = EDGE_CASES[case]
    s = make_site(bitrix_db_url, tmp_path, migrated=True, bitrix={"timezone": "America/New_York"})
    try:
        s.drop("settlements_edge.xml", content)
        result = s.run()
        assert result.exit_code == 4, result
        [f] = result.files
        assert f.status == "rejected" and "out of range" in f.message, f.message
        assert where in f.message and field in f.message, f.message
        assert s.balance() == {} and s.payments() == {}
        assert (s.exports / "failed" / "settlements_edge.xml").exists()
    finally:
        s.engine.dispose()


# -- 2. an export dated ahead of the host's clock ---------------------------------------------------


def test_future_export_is_held_with_exit_5_and_applied_when_approved(site: Site) -> None:
    site.drop("settlements_2062.xml", xml_export([counterparty(1, debt="5.00")], export_id=guid(62, 3),
                                                 generated_at=FUTURE))

    held = site.run()

    assert held.exit_code == 5, held
    [f] = held.files
    assert f.status == "held"
    assert "ahead of this host's clock" in f.message and "bitrix.max_clock_skew" in f.message, f.message
    assert f"syncd run-once --approve {guid(62, 3)}" in f.message
    assert site.balance() == {}
    assert (site.exports / "settlements_2062.xml").exists()  # stays for --approve
    assert site.imports()[-1]["status"] == "held"

    approved = site.run(approve=[guid(62, 3)])

    assert approved.exit_code == 0, approved
    assert [x.status for x in approved.files] == ["applied"]
    assert site.balance()[guid(1)]["UF_DEBT"] == 5.0


def test_correct_exports_apply_after_a_future_dated_one_was_applied(site: Site) -> None:
    # The 2062 export went through (approved by mistake, or applied by an older syncd).
    cps = [counterparty(1, debt="100.00"), counterparty(2, debt="200.00")]
    site.drop("settlements_2062.xml", xml_export(cps, export_id=guid(62, 3), generated_at=FUTURE))
    assert site.run(approve=[guid(62, 3)]).exit_code == 0

    site.drop("settlements_full.xml", xml_export([counterparty(1, debt="10.00"), counterparty(2, debt="20.00")],
                                                 generated_at=_ago(2)))
    full = site.run()

    assert [(x.status, x.message) for x in full.files] == [("applied", "")], full.files
    assert {g: r["UF_DEBT"] for g, r in site.balance().items()} == {guid(1): 10.0, guid(2): 20.0}

    site.drop("settlements_delta.xml", xml_export([counterparty(2, debt="21.00")], mode="delta",
                                                  generated_at=_ago(1)))
    delta = site.run()

    assert [x.status for x in delta.files] == ["applied"]
    assert delta.files[0].counts is not None and delta.files[0].counts.skipped_newer == 0
    assert site.balance()[guid(2)]["UF_DEBT"] == 21.0


def test_approving_a_superseded_export_applies_it_and_later_exports_apply_after_it(site: Site) -> None:
    site.drop("settlements_12.xml", xml_export([counterparty(1, debt="12.00"), counterparty(2, debt="2.00")],
                                               generated_at="2026-11-25T12:00:00"))
    site.run()
    older = xml_export([counterparty(1, debt="10.00"), counterparty(2, debt="1.00")], export_id=guid(10, 3),
                       generated_at="2026-11-25T10:00:00")
    site.drop("settlements_10.xml", older)
    assert [x.status for x in site.run().files] == ["superseded"]
    site.drop("settlements_10.xml", older)

    approved = site.run(approve=[guid(10, 3)])

    assert [x.status for x in approved.files] == ["applied"], approved.files
    bal = site.balance()
    assert {g: r["UF_DEBT"] for g, r in bal.items()} == {guid(1): 10.0, guid(2): 1.0}
    assert bal[guid(1)]["UF_UPDATED_AT"] == datetime(2026, 11, 25, 10, 0)
    # A correct export between the approved one and the one it overrode applies, in full.
    site.drop("settlements_11.xml", xml_export([counterparty(1, debt="11.00"), counterparty(2, debt="1.50")],
                                               generated_at="2026-11-25T11:00:00"))
    later = site.run()
    assert [x.status for x in later.files] == ["applied"], later.files
    assert {g: r["UF_DEBT"] for g, r in site.balance().items()} == {guid(1): 11.0, guid(2): 1.5}


@pytest.mark.parametrize("state_row", ["kept", "lost"])
def test_a_balance_row_hand_set_into_the_future_is_corrected(site: Site, state_row: str) -> None:
    site.drop("settlements_1.xml", xml_export([counterparty(1, debt="100.00")], generated_at=_ago(3)))
    site.run()
    with site.engine.begin() as conn:  # an admin sets the row's date in 2062 by hand
        conn.execute(text("UPDATE contractor_balance SET UF_DEBT = 999, UF_UPDATED_AT = '2062-01-01 00:00:00'"))
        if state_row == "lost":  # a row syncd has no stamp of its own for
            conn.execute(text("DELETE FROM syncd_counterparty_state"))
    site.drop("settlements_2.xml", xml_export([counterparty(1, debt="150.00")], mode="delta", generated_at=_ago(1)))

    [f] = site.run().files

    assert f.status == "applied" and f.counts is not None and f.counts.skipped_newer == 0
    row = site.balance()[guid(1)]
    assert row["UF_DEBT"] == 150.0
    assert row["UF_UPDATED_AT"] < datetime(2030, 1, 1)


# -- 3. DST ------------------------------------------------------------------------------------------


def test_an_export_30_minutes_later_across_the_autumn_change_applies(berlin: Site) -> None:
    # 02:40 summer time is 00:40 UTC; 02:10 winter time, 30 minutes later, is 01:10 UTC.
    berlin.drop("settlements_a.xml", xml_export([counterparty(1, debt="100.00"), counterparty(2, debt="5.00")],
                                                generated_at="2026-10-25T02:40:00+02:00"))
    berlin.run()
    berlin.drop("settlements_b.xml", xml_export([counterparty(1, debt="150.00"), counterparty(2, debt="5.00")],
                                                generated_at="2026-10-25T02:10:00+01:00"))

    [f] = berlin.run().files

    assert f.status == "applied" and f.counts is not None and f.counts.skipped_newer == 0, f
    bal = berlin.balance()
    assert bal[guid(1)]["UF_DEBT"] == 150.0
    assert bal[guid(2)]["UF_UPDATED_AT"] == datetime(2026, 10, 25, 2, 10)  # confirmed as of the newer one
    # And the late delta the other way round stays older than what it is older than.
    berlin.drop("settlements_late.xml", xml_export([counterparty(1, debt="1.00")], mode="delta",
                                                   generated_at="2026-10-25T02:50:00+02:00"))
    [late] = berlin.run().files
    assert late.counts is not None and late.counts.skipped_newer == 1
    assert berlin.balance()[guid(1)]["UF_DEBT"] == 150.0


# -- 4. an admin's edit never waits out an apply -----------------------------------------------------


@pytest.mark.parametrize("path", ["by digest index", "by stored digest"])
def test_an_admin_edit_of_an_unchanged_balance_row_does_not_wait_for_the_apply(
        site: Site, bitrix_db_url: str, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    cps = [counterparty(n, payments=1) for n in range(1, 5)]
    site.drop("settlements_1.xml", xml_export(cps, generated_at="2026-11-25T10:00:00"))
    site.run()
    row_id = site.balance()[guid(1)]["ID"]
    # Counterparty 1 is unchanged and first; 2 changed, so its batch reads the database, which waits
    # for every statement the apply queued before (the confirmation of 1 included).
    cps[1] = counterparty(2, debt="7.00", payments=1)
    site.drop("settlements_2.xml", xml_export(cps, generated_at="2026-11-25T11:00:00"))
    monkeypatch.setattr("syncd.bitrix.hlblock.BATCH", 1)
    if path == "by stored digest":
        monkeypatch.setattr(runner_mod, "digest_index", _no_index)
    edits: list[str] = []
    calls = 0

    def admin_edits(batch: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            edits.append(_admin_update(bitrix_db_url, row_id))

    real = runner_mod.apply_export

    def apply(*args: Any, **kwargs: Any) -> Any:
        tick: Callable[[int], None] = kwargs["progress"]
        kwargs["progress"] = lambda n: (tick(n), admin_edits(n))
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "apply_export", apply)

    result = site.run()

    assert edits == ["done"], edits  # it finished while the apply was still going, not after its commit
    assert [f.status for f in result.files] == ["applied"]
    row = site.balance()[guid(1)]
    assert (row["UF_NAME"], row["UF_UPDATED_AT"]) == ("edited by hand", datetime(2026, 11, 25, 11, 0))
    assert site.balance()[guid(2)]["UF_DEBT"] == 7.0


def _no_index(*args: Any) -> Any:
    """An index that knows no digest (so every counterparty is parsed), with the real salt."""
    from syncd.bitrix.hlblock import DigestIndex, digest_index

    return DigestIndex(digest_index(*args)._salt, args[3], [])


def _admin_update(db_url: str, row_id: int) -> str:
    """An edit in the Bitrix admin (by row ID) from a connection of its own; a lock wait is cut at 20 s."""
    engine = create_engine(db_url)
    outcome: list[str] = []

    def edit() -> None:
        try:
            with engine.begin() as conn:
                conn.execute(text("SET SESSION innodb_lock_wait_timeout = 20"))
                conn.execute(text("UPDATE contractor_balance SET UF_NAME = 'edited by hand' WHERE ID = :i"),
                             {"i": row_id})
            outcome.append("done")
        except OperationalError as exc:
            outcome.append(f"failed: {exc.orig}")

    worker = threading.Thread(target=edit)
    worker.start()
    worker.join(120)
    engine.dispose()
    return outcome[0] if outcome else "still waiting"


def test_max_clock_skew_is_a_duration_and_a_bad_one_names_the_key(tmp_path: Path) -> None:
    from syncd import config as config_mod
    from syncd.errors import ConfigError

    base = {"source": {"type": "local", "path": str(tmp_path)}, "database": {"url": "sqlite://"},
            "state": {"dir": str(tmp_path)}}
    assert config_mod.from_mapping(base).bitrix.max_clock_skew == timedelta(minutes=10)
    assert config_mod.from_mapping(base | {"bitrix": {"max_clock_skew": "2h"}}).bitrix.max_clock_skew == \
        timedelta(hours=2)
    with pytest.raises(ConfigError, match=r"bitrix\.max_clock_skew"):
        config_mod.from_mapping(base | {"bitrix": {"max_clock_skew": "ten minutes"}})
