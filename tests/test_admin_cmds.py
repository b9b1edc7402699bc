"""The commands an admin tries before trusting syncd with the shop (issue 15): `run-once --dry-run`,
`--json` on run-once, check and validate, `syncd config check`, `syncd demo --database`, the version.
Each runs `syncd` as a process, as the admin types it, and asserts the exit code and the text they see."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.exports import counterparty, guid, xml_export
from tests.ops_helpers import debts, env, imports, runs, sql, syncd, wait_for


def local_config(tmp_path: Path, db_url: str, **extra: str) -> Path:
    exports = tmp_path / "exports"
    exports.mkdir(exist_ok=True)
    lines = ["[source]", 'type = "local"', f'path = "{exports}"', 'min_age = "30s"', "",
             "[database]", f'url = "{db_url}"', "", "[state]", f'dir = "{tmp_path / "state"}"', ""]
    for key, value in extra.items():
        lines.append(f"{key} = {value}")
    path = tmp_path / "syncd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def put(tmp_path: Path, name: str, data: bytes, age: float = 3600) -> Path:
    target = tmp_path / "exports" / name
    target.write_bytes(data)
    old = time.time() - age
    os.utime(target, (old, old))
    return target


def lines_of(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


# ---------------------------------------------------------------- run-once --dry-run


def test_dry_run_prints_the_counts_and_changes_nothing(tmp_path: Path, bitrix_db_url: str) -> None:
    cfg = local_config(tmp_path, bitrix_db_url)
    first = put(tmp_path, "settlements_20261125_100000.xml", xml_export([counterparty(1), counterparty(2)]))

    done = syncd("run-once", "--config", cfg, "--dry-run")

    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0].startswith("applied    settlements_20261125_100000.xml  [full, as of 2026-11-25 10:00:00 +03:00]")
    assert "balance +2 ~0 =0 -0" in out[0] and "dry run: rolled back, nothing changed" in out[0]
    assert out[-1].startswith("dry run, nothing changed: summary: 1 applied, 0 duplicate")
    # Nothing written: no rows, no ledger entry, no run in the journal; the file is still on the source.
    assert debts(bitrix_db_url) == {}
    assert imports(bitrix_db_url) == [] and runs(bitrix_db_url) == []
    assert first.exists() and not (tmp_path / "exports" / "processed").exists()

    # The real run then does what the dry run said.
    real = syncd("run-once", "--config", cfg)
    assert real.returncode == 0, real.stderr
    assert "balance +2 ~0 =0 -0" in real.stdout
    assert debts(bitrix_db_url) == {guid(1): 1000.0, guid(2): 1000.0}

    # A change, tried dry: the diff against what the database now holds.
    put(tmp_path, "settlements_20261125_110000.xml",
        xml_export([counterparty(1, debt="5.00"), counterparty(2)], generated_at="2026-11-25T11:00:00"))
    dry = syncd("run-once", "--config", cfg, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "balance +0 ~1 =1 -0" in dry.stdout
    assert debts(bitrix_db_url) == {guid(1): 1000.0, guid(2): 1000.0}
    assert len(imports(bitrix_db_url)) == 1 and len(runs(bitrix_db_url)) == 1


def test_dry_run_of_a_bad_file_says_rejected_and_leaves_it(tmp_path: Path, bitrix_db_url: str) -> None:
    cfg = local_config(tmp_path, bitrix_db_url)
    bad = put(tmp_path, "settlements_20261125_100000.xml", b"<Settlements><broken")

    done = syncd("run-once", "--config", cfg, "--dry-run")

    assert done.returncode == 4
    assert done.stdout.startswith("rejected   settlements_20261125_100000.xml")
    assert bad.exists() and not (tmp_path / "exports" / "failed").exists()
    assert imports(bitrix_db_url) == [] and not list((tmp_path / "state" / "rejected").iterdir())


# ---------------------------------------------------------------- --json


def test_run_once_json_gives_one_object_per_file_and_a_summary(tmp_path: Path, bitrix_db_url: str) -> None:
    cfg = local_config(tmp_path, bitrix_db_url)
    put(tmp_path, "settlements_20261125_100000.xml", xml_export([counterparty(1)]))
    put(tmp_path, "settlements_20261125_110000.xml", xml_export([counterparty(2)]), age=1)

    done = syncd("run-once", "--config", cfg, "--json")

    assert done.returncode == 0, done.stderr
    waiting, applied, summary = lines_of(done.stdout)
    assert waiting["type"] == "file" and waiting["status"] == "waiting"
    assert applied["name"] == "settlements_20261125_100000.xml" and applied["status"] == "applied"
    assert applied["generated_at"] == "2026-11-25T10:00:00+03:00"
    assert applied["counts"]["balance"] == {"inserted": 1, "updated": 0, "unchanged": 0, "deleted": 0}  # type: ignore[index]
    assert summary["type"] == "summary" and summary["applied"] == 1 and summary["waiting"] == 1
    assert summary["exit_code"] == 0 and summary["error"] is None and summary["dry_run"] is False


# ---------------------------------------------------------------- config check


def test_config_check_says_what_a_run_would_do(tmp_path: Path, bitrix_db_url: str) -> None:
    cfg = local_config(tmp_path, bitrix_db_url)
    put(tmp_path, "settlements_20261125_100000.xml", xml_export([counterparty(1)]))

    done = syncd("config", "check", "--config", cfg)

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"config     {cfg}: OK" in out
    assert f"state.dir  {tmp_path / 'state'}: writable by" in out
    assert "database   mysql+pymysql://" in out and "reachable, migrated (blocks ContractorBalance" in out
    assert f"source     {tmp_path / 'exports'}: reachable, 1 ready, 0 waiting" in out
    assert "a run now  apply settlements_20261125_100000.xml (oldest export first); then move it to processed/" in out
    assert out.rstrip().endswith("result: OK (exit 0)")
    assert imports(bitrix_db_url) == [] and (tmp_path / "exports" / "settlements_20261125_100000.xml").exists()


def test_config_check_names_each_failure_and_its_exit_code(tmp_path: Path, db_url: str) -> None:
    # An empty database: reachable, not migrated -> 7, naming `syncd migrate`.
    cfg = local_config(tmp_path, db_url)
    done = syncd("config", "check", "--config", cfg)
    assert done.returncode == 7
    assert "is reachable but not migrated" in done.stdout and "(run `syncd migrate`)" in done.stdout
    assert done.stdout.rstrip().endswith("result: problems found (exit 7)")

    # A source folder that does not exist -> 6 (the database problem still wins: 7).
    (tmp_path / "exports").rmdir()
    done = syncd("config", "check", "--config", cfg)
    assert done.returncode == 7 and "source     ERROR source folder" in done.stdout

    # A key that is not syncd's -> 3, before anything is tried.
    with cfg.open("a", encoding="utf-8") as f:
        f.write('\n[bitrix]\nbogus = 1\n')
    done = syncd("config", "check", "--config", cfg)
    assert done.returncode == 3 and "bogus" in done.stderr and "Traceback" not in done.stderr


def test_config_check_source_unreachable_exits_6(tmp_path: Path, bitrix_db_url: str) -> None:
    cfg = local_config(tmp_path, bitrix_db_url)
    (tmp_path / "exports").rmdir()
    done = syncd("config", "check", "-c", cfg)
    assert done.returncode == 6
    assert "source     ERROR source folder" in done.stdout and "check source.path" in done.stdout


def test_check_json_gives_the_verdict_and_the_report(tmp_path: Path, bitrix_db_url: str) -> None:
    cfg = local_config(tmp_path, bitrix_db_url)
    put(tmp_path, "settlements_20261125_100000.xml", xml_export([counterparty(1)]))
    assert syncd("run-once", "-c", cfg).returncode == 0

    done = syncd("check", "-c", cfg, "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["state"] == "OK" and data["exit_code"] == 0
    assert data["message"].startswith("last export applied ")
    assert set(data["perfdata"]) >= {"age", "data_age", "files_waiting"}
    assert data["status"]["last_applied"]["file_name"] == "settlements_20261125_100000.xml"

    bad = syncd("check", "-c", tmp_path / "missing.toml", "--json")
    assert bad.returncode == 3
    assert json.loads(bad.stdout)["state"] == "UNKNOWN"


def test_validate_json_one_object_per_file_and_a_summary(tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    good.write_bytes(xml_export([counterparty(1), counterparty(2)]))
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<Settlements><broken")

    done = syncd("validate", "--json", good, broken)

    assert done.returncode == 4
    first, second, summary = lines_of(done.stdout)
    assert first["file"] == str(good) and first["ok"] is True and first["problems"] == []
    assert first["counterparties"] == 2 and first["generated_at"] == "2026-11-25T10:00:00+03:00"
    assert first["totals"]["debt"] == "2000.00"  # type: ignore[index]
    assert second["ok"] is False and second["problems"]
    assert summary == {"type": "summary", "files": 2, "ok": 1, "rejected": 1, "exit_code": 4}


# ---------------------------------------------------------------- demo --database


def test_demo_database_makes_a_staging_bitrix_that_the_real_path_fills(tmp_path: Path, db_url: str) -> None:
    exports = tmp_path / "exports"

    done = syncd("demo", "--database", db_url, "--exports", exports)

    assert done.returncode == 0, done.stderr
    assert "the minimal Bitrix core created (b_hlblock_entity, b_user_field, b_user" in done.stdout
    assert f"sample export: {exports / 'settlements_sample.xml'}" in done.stdout
    assert "`syncd migrate`" in done.stdout
    again = syncd("demo", "--database", db_url)
    assert again.returncode == 0 and "the Bitrix core is there already; nothing changed" in again.stdout

    # The real path on it: migrate, then the sample applied, two buyers linked.
    cfg = local_config(tmp_path, db_url)
    assert syncd("migrate", "-c", cfg).returncode == 0
    assert syncd("config", "check", "-c", cfg).returncode == 0
    run = syncd("run-once", "-c", cfg)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("applied    settlements_sample.xml")
    assert sql(db_url, "SELECT COUNT(*) FROM contractor_balance WHERE UF_BITRIX_USER_ID IS NOT NULL") == 2


def test_demo_database_refuses_a_database_with_tables_of_its_own(db_url: str) -> None:
    sql(db_url, "CREATE TABLE b_option (NAME varchar(50))")

    done = syncd("demo", "--database", db_url)

    assert done.returncode == 3
    assert "holds 1 tables of its own (b_option)" in done.stderr and "CREATE DATABASE syncd_demo" in done.stderr
    assert sql(db_url, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()") == 1


# ---------------------------------------------------------------- the version


def test_the_version_in_version_status_json_the_daemon_log_and_the_changelog(
    tmp_path: Path, bitrix_db_url: str
) -> None:
    from syncd import __version__

    done = syncd("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"syncd, version {__version__}"

    # CHANGELOG.md names the version being made (or, once released, the version itself) as a heading.
    release = __version__.removesuffix(".dev0")
    changelog = (Path(__file__).resolve().parent.parent / "CHANGELOG.md").read_text(encoding="utf-8")
    heading = f"## Unreleased ({release})" if __version__.endswith(".dev0") else f"## {release} — "
    assert heading in changelog

    cfg = local_config(tmp_path, bitrix_db_url)
    status = syncd("status", "-c", cfg, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["version"] == __version__

    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "syncd", "daemon", "-c", str(cfg)], stdout=out, stderr=out,
                                env=env())
    try:
        wait_for("the daemon's start", lambda: "daemon started" in log.read_text(), timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    first = log.read_text().splitlines()[0]
    assert f"syncd {__version__} starting (pid {proc.pid}, config {cfg})" in first


def test_dry_run_of_an_export_the_guard_would_hold_exits_5_and_records_nothing(
    tmp_path: Path, bitrix_db_url: str
) -> None:
    cfg = local_config(tmp_path, bitrix_db_url)
    put(tmp_path, "settlements_20261125_100000.xml", xml_export([counterparty(n) for n in range(1, 6)]))
    assert syncd("run-once", "-c", cfg).returncode == 0
    short = put(tmp_path, "settlements_20261125_110000.xml",
                xml_export([counterparty(1)], generated_at="2026-11-25T11:00:00"))

    done = syncd("run-once", "-c", cfg, "--dry-run", "--json")

    assert done.returncode == 5, done.stdout + done.stderr
    held, summary = lines_of(done.stdout)
    assert held["status"] == "held" and "syncd run-once --approve" in str(held["message"])
    assert summary["held"] == 1 and summary["dry_run"] is True and summary["exit_code"] == 5
    assert short.exists() and [r["status"] for r in imports(bitrix_db_url)] == ["applied"]
    assert len(debts(bitrix_db_url)) == 5


def test_run_once_json_on_a_database_not_migrated_ends_with_the_error(tmp_path: Path, db_url: str) -> None:
    cfg = local_config(tmp_path, db_url)

    done = syncd("run-once", "-c", cfg, "--json")

    assert done.returncode == 7
    (summary,) = lines_of(done.stdout)
    assert summary["type"] == "summary" and summary["exit_code"] == 7
    assert "syncd migrate" in str(summary["error"])
