"""Bad files from 1C get a clear reason and harm nothing; an unreachable server fails the run cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd import config as config_mod
from syncd.errors import EXIT_DATABASE, EXIT_REJECTED, EXIT_SOURCE
from syncd.run.runner import run_once
from tests.exports import counterparty, guid, xml_export
from tests.rig.mariadb import free_port
from tests.site import Site, make_site


@pytest.fixture
def site(bitrix_db_url: str, tmp_path: Path) -> Iterator[Site]:
    s = make_site(bitrix_db_url, tmp_path, migrated=True)
    s.drop("settlements_0.xml", xml_export([counterparty(n, payments=2, documents=1) for n in range(1, 6)],
                                           generated_at="2026-11-24T10:00:00"))
    assert s.run().exit_code == 0
    yield s
    s.engine.dispose()


def test_error_after_thousands_of_written_rows_rolls_everything_back(site: Site) -> None:
    before = site.snapshot()
    # 2,500 good counterparties (more than two write batches), then a bad amount in the last one.
    cps = [counterparty(n, payments=2, documents=1) for n in range(1, 2501)]
    cps.append(counterparty(2501, debt="1.234,56"))
    site.drop("settlements_1.xml", xml_export(cps, generated_at="2026-11-25T10:00:00"))

    result = site.run()

    assert result.exit_code == EXIT_REJECTED
    [f] = result.files
    assert f.status == "rejected"
    assert "settlements_1.xml" in f.message and "Debt" in f.message and "1.234,56" in f.message
    assert site.snapshot() == before  # nothing half-applied
    entry = site.imports()[-1]
    assert entry["status"] == "rejected" and "1.234,56" in entry["error"]
    assert (site.exports / "failed" / "settlements_1.xml").exists()
    [kept] = list((site.state / "rejected").glob("*settlements_1.xml"))
    reason = kept.with_name(kept.name + ".reason.txt").read_text(encoding="utf-8")
    assert "1.234,56" in reason


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"hello, world", "XML"),
        (xml_export([counterparty(1)])[:-40], "line"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><SettlementsExport/>', "DOCTYPE"),
        (xml_export([counterparty(1)]).replace(b"SettlementsExport", b"Export"), "SettlementsExport"),
        (xml_export([counterparty(1)]).replace(b'formatVersion="1"', b'formatVersion="2"'), "formatVersion"),
        (xml_export([counterparty(1), counterparty(1)]), guid(1)),
        (xml_export([counterparty(1, id="not-a-guid")]), "not-a-guid"),
        (xml_export([counterparty(1)]).replace(b'counterparties="1"', b'counterparties="2"'), "ummary"),
    ],
    ids=["empty", "not-xml", "truncated", "doctype", "wrong-root", "version", "dup-id", "bad-guid", "summary"],
)
def test_bad_file_is_rejected_with_its_reason_and_changes_nothing(site: Site, content: bytes, expected: str) -> None:
    before = site.snapshot()
    site.drop("settlements_bad.xml", content)

    result = site.run()

    assert result.exit_code == EXIT_REJECTED
    [f] = result.files
    assert f.status == "rejected"
    assert f.message.startswith("settlements_bad.xml")
    assert expected in f.message
    assert site.snapshot() == before
    assert site.imports()[-1]["status"] == "rejected"


def test_unreachable_database_fails_the_run_and_keeps_the_file(site: Site, tmp_path: Path) -> None:
    site.drop("settlements_1.xml", xml_export([counterparty(1)], generated_at="2026-11-25T10:00:00"))
    url = f"mysql+pymysql://syncd:s3cret@127.0.0.1:{free_port()}/bitrix"
    cfg = config_mod.from_mapping({
        "source": {"type": "local", "path": str(site.exports)},
        "database": {"url": url},
        "state": {"dir": str(tmp_path / "state2")},
    })
    result = run_once(cfg)
    assert result.exit_code == EXIT_DATABASE
    assert "cannot reach the database" in str(result.error)
    assert "s3cret" not in str(result.error)
    assert (site.exports / "settlements_1.xml").exists()


def test_missing_source_folder_fails_the_run(site: Site, tmp_path: Path) -> None:
    cfg = config_mod.from_mapping({
        "source": {"type": "local", "path": str(tmp_path / "nowhere")},
        "database": {"url": site.cfg.database.url},
        "state": {"dir": str(site.state)},
    })
    result = run_once(cfg, engine=site.engine)
    assert result.exit_code == EXIT_SOURCE
    assert "nowhere" in str(result.error)


def test_database_without_blocks_says_to_migrate(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    cfg = config_mod.from_mapping({
        "source": {"type": "local", "path": str(tmp_path / "exports")},
        "database": {"url": db_url},
        "state": {"dir": str(tmp_path / "state")},
    })
    result = run_once(cfg)
    assert result.exit_code == EXIT_DATABASE
    assert "syncd migrate" in str(result.error)
