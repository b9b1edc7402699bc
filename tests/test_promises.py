"""README promises as a user meets them: `syncd run-once`, `validate`, `check` as processes against the suite's
sshd and MariaDB. docs/testing.md maps each promise to its test here or elsewhere.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.exports import counterparty, guid, json_export, xml_export
from tests.ops_helpers import debts, env, imports, row_locked, sql, syncd, wait_for, waiting_for_row_lock, write_config
from tests.rig.sshd import SshServer

BROKEN = b"<SettlementsExport formatVersion='1'>broken"
AS_OF_UTC = datetime(2026, 11, 25, 7, 0, tzinfo=UTC).timestamp()  # 10:00 Moscow, the exports' default


@pytest.fixture
def config(bitrix_db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path) -> Path:
    return write_config(tmp_path / "syncd.toml", sshd, remote_dir, bitrix_db_url, tmp_path / "state",
                        source={"timezone": "Europe/Moscow"})


def run(config: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return syncd("run-once", "--config", config, *args)


def export(n: int, generated_at: str = "2026-11-25T10:00:00", first: int = 1, **kw: object) -> bytes:
    return xml_export([counterparty(i) for i in range(first, first + n)], generated_at=generated_at, **kw)  # type: ignore[arg-type]



def seconds_shown(line: str, done_within: float) -> float:
    """The `(0.31s)` at the end of a file's line: how long that file took, so at most the whole run."""
    took = float(line.rsplit("(", 1)[1].removesuffix("s)"))
    assert 0 <= took <= done_within, line
    return took


def timed(config: Path, *args: str | Path) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    done = run(config, *args)
    return done, time.monotonic() - t0


def ledger_rows(db_url: str) -> list[tuple[str, str]]:
    return [(r["file_name"], r["status"]) for r in imports(db_url)]


# ---------------------------------------------------------------- each outcome: exit code, ledger row, the file


def test_applied_goes_to_processed_with_an_applied_row(config: Path, bitrix_db_url: str, remote_dir: Path,
                                                       sshd: SshServer, tmp_path: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", export(2))
    done, wall = timed(config)
    assert done.returncode == 0, done.stdout + done.stderr
    seconds_shown(done.stdout.splitlines()[0], wall)
    assert done.stdout.startswith(
        "applied    settlements_1.xml  [full, as of 2026-11-25 10:00:00 +03:00]  balance +2 ~0 =0 -0")
    assert ledger_rows(bitrix_db_url) == [("settlements_1.xml", "applied")]
    assert not (remote_dir / "settlements_1.xml").exists() and (remote_dir / "processed" / "settlements_1.xml").exists()
    assert debts(bitrix_db_url) == {guid(1): 1000.0, guid(2): 1000.0}
    assert [p.name for p in (tmp_path / "state" / "applied").iterdir()] == ["settlements_1.xml"]


@pytest.mark.parametrize("same", ["export id", "bytes"])
def test_duplicate_changes_nothing_and_goes_to_processed(config: Path, bitrix_db_url: str, remote_dir: Path,
                                                         sshd: SshServer, same: str) -> None:
    first = export(2, export_id=guid(5, 3))
    sshd.put(remote_dir / "settlements_1.xml", first)
    assert run(config).returncode == 0
    sql(bitrix_db_url, "UPDATE contractor_balance SET UF_DEBT = 7")  # any write by a duplicate would show
    # Same export id with other content, or the very same bytes under another export id's file name.
    again = export(2, export_id=guid(5, 3), generated_at="2026-11-25T11:00:00") if same == "export id" else first
    sshd.put(remote_dir / "settlements_1_copy.xml", again)

    done = run(config)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("duplicate  settlements_1_copy.xml")
    assert "already applied as settlements_1.xml (import #1)" in done.stdout
    assert ledger_rows(bitrix_db_url) == [("settlements_1.xml", "applied"), ("settlements_1_copy.xml", "duplicate")]
    assert (remote_dir / "processed" / "settlements_1_copy.xml").exists()
    assert set(debts(bitrix_db_url).values()) == {7.0}


def test_superseded_changes_nothing_and_goes_to_processed(config: Path, bitrix_db_url: str, remote_dir: Path,
                                                          sshd: SshServer) -> None:
    sshd.put(remote_dir / "settlements_2.xml", export(2, "2026-11-25T12:00:00"))
    assert run(config).returncode == 0
    older = xml_export([counterparty(1, debt="5.00"), counterparty(2)])  # a full export, older
    sshd.put(remote_dir / "settlements_1.xml", older)

    done = run(config)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("superseded settlements_1.xml")
    assert ledger_rows(bitrix_db_url) == [("settlements_2.xml", "applied"), ("settlements_1.xml", "superseded")]
    assert (remote_dir / "processed" / "settlements_1.xml").exists()
    assert debts(bitrix_db_url)[guid(1)] == 1000.0


def test_an_older_delta_is_not_superseded(config: Path, bitrix_db_url: str, remote_dir: Path,
                                          sshd: SshServer) -> None:
    sshd.put(remote_dir / "settlements_2.xml", export(2, "2026-11-25T12:00:00"))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(3)], mode="delta"))  # older, but a delta
    done = run(config)
    assert done.returncode == 0 and done.stdout.startswith("applied    settlements_1.xml"), done.stdout


def test_held_stays_on_the_source_with_a_held_row(config: Path, bitrix_db_url: str, remote_dir: Path,
                                                  sshd: SshServer) -> None:
    sshd.put(remote_dir / "settlements_1.xml", export(10))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", export(1, "2026-11-25T11:00:00", export_id=guid(9, 3)))

    done, wall = timed(config)

    assert done.returncode == 5, done.stdout + done.stderr
    assert done.stdout.startswith("held       settlements_2.xml")
    seconds_shown(done.stdout.splitlines()[0], wall)
    assert f"syncd run-once --approve {guid(9, 3)}" in done.stdout
    assert ledger_rows(bitrix_db_url) == [("settlements_1.xml", "applied"), ("settlements_2.xml", "held")]
    assert (remote_dir / "settlements_2.xml").exists() and not (remote_dir / "processed" / "settlements_2.xml").exists()
    assert set(debts(bitrix_db_url).values()) == {1000.0}


def test_rejected_goes_to_failed_with_a_copy_and_reason(config: Path, bitrix_db_url: str, remote_dir: Path,
                                                        sshd: SshServer, tmp_path: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1), counterparty(2, debt="abc")]))

    done, wall = timed(config)
    seconds_shown(done.stdout.splitlines()[0], wall)

    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stdout.startswith("rejected   settlements_1.xml")
    # Names the file, the line and record, and the field.
    where = f'settlements_1.xml: line 6, counterparty #2 (id={guid(2)}): field Debt: "abc" is not an amount'
    assert where in done.stdout
    assert ledger_rows(bitrix_db_url) == [("settlements_1.xml", "rejected")]
    assert (remote_dir / "failed" / "settlements_1.xml").exists() and not (remote_dir / "settlements_1.xml").exists()
    [copy] = [p for p in (tmp_path / "state" / "rejected").iterdir() if not p.name.endswith(".reason.txt")]
    assert copy.name.endswith("_settlements_1.xml")
    assert copy.read_bytes() == (remote_dir / "failed" / "settlements_1.xml").read_bytes()
    reason = copy.with_name(copy.name + ".reason.txt").read_text()
    assert "settlements_1.xml: line 6, counterparty #2" in reason and "field Debt" in reason
    assert debts(bitrix_db_url) == {}


def test_waiting_stays_and_a_later_run_takes_it(config: Path, bitrix_db_url: str, remote_dir: Path,
                                                sshd: SshServer) -> None:
    young = sshd.put(remote_dir / "settlements_1.xml", export(1), age=None)  # min_age is 30s
    part = sshd.put(remote_dir / "settlements_2.xml.part", export(1, first=2), age=3600)
    tmp = sshd.put(remote_dir / "settlements_3.xml.tmp", export(1, first=3), age=3600)

    done = run(config)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("waiting    settlements_1.xml  still being written: modified ")
    assert "waiting for min_age=30s" in done.stdout
    assert "1 waiting" in done.stdout.splitlines()[-1]
    assert imports(bitrix_db_url) == []  # a waiting file gets no ledger row
    assert young.exists() and part.exists() and tmp.exists()  # all stay on the source
    sshd.put(young, export(1), age=3600)
    assert run(config).returncode == 0
    assert ledger_rows(bitrix_db_url) == [("settlements_1.xml", "applied")]  # the .part and .tmp are never taken
    assert debts(bitrix_db_url) == {guid(1): 1000.0}


def test_waiting_for_the_done_marker(bitrix_db_url: str, remote_dir: Path, sshd: SshServer, tmp_path: Path) -> None:
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, bitrix_db_url, tmp_path / "state",
                          source={"require_marker": True})
    sshd.put(remote_dir / "settlements_1.xml", export(1))
    done = run(config)
    assert done.returncode == 0 and done.stdout.startswith(
        "waiting    settlements_1.xml  no settlements_1.xml.done marker yet"), done.stdout
    assert imports(bitrix_db_url) == [] and (remote_dir / "settlements_1.xml").exists()
    sshd.put(remote_dir / "settlements_1.xml.done", b"")
    assert run(config).returncode == 0
    assert ledger_rows(bitrix_db_url) == [("settlements_1.xml", "applied")]


# ---------------------------------------------------------------- the guard


@pytest.mark.parametrize(("missing", "ratio", "expect"), [
    (20, None, 0),  # exactly the default 20%: applied
    (21, None, 5),  # just above: held
    (10, "0.1", 0),
    (11, "0.1", 5),
])
def test_guard_boundary_at_max_missing_ratio(bitrix_db_url: str, sshd: SshServer, remote_dir: Path,
                                             tmp_path: Path, missing: int, ratio: str | None, expect: int) -> None:
    bitrix = {"max_missing_ratio": float(ratio)} if ratio else {}
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, bitrix_db_url, tmp_path / "state",
                          bitrix=bitrix)
    sshd.put(remote_dir / "settlements_1.xml", export(100))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", export(100 - missing, "2026-11-25T11:00:00", first=missing + 1))

    done = run(config)

    assert done.returncode == expect, done.stdout + done.stderr
    zeroed = [g for g, d in debts(bitrix_db_url).items() if d == 0]
    if expect == 0:
        assert len(zeroed) == missing
    else:
        limit = "20%" if ratio is None else "10%"
        assert f"{missing} of 100 counterparties ({missing}%, more than max_missing_ratio {limit})" in done.stdout
        assert zeroed == []


def test_guard_counts_only_counterparties_with_a_debt(bitrix_db_url: str, sshd: SshServer, remote_dir: Path,
                                                      config: Path) -> None:
    # 30 of 100 go missing, but 15 of them owe nothing already: only 15% would lose a debt.
    cps = [counterparty(i, debt="0" if i <= 15 else "1000.00") for i in range(1, 101)]
    sshd.put(remote_dir / "settlements_1.xml", xml_export(cps))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", xml_export(cps[30:], generated_at="2026-11-25T11:00:00"))
    done = run(config)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("by", ["export id", "EXPORT ID", "file name"])
def test_approve_applies_a_held_export_through_the_cli(config: Path, bitrix_db_url: str, remote_dir: Path,
                                                       sshd: SshServer, by: str) -> None:
    sshd.put(remote_dir / "settlements_1.xml", export(10))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", export(2, "2026-11-25T11:00:00", export_id=guid(9, 3)))
    assert run(config).returncode == 5
    wrong = run(config, "--approve", "settlements_9.xml", "--approve", guid(8, 3))
    assert wrong.returncode == 2  # an approval that names no held file: said, and nothing applied
    assert ("--approve settlements_9.xml: nothing is held (or superseded) under that export id or file name"
            in wrong.stderr)
    assert f"held now: {guid(9, 3)} (settlements_2.xml)" in wrong.stderr
    assert ledger_rows(bitrix_db_url)[-1] == ("settlements_2.xml", "held")

    key = {"export id": guid(9, 3), "EXPORT ID": guid(9, 3).upper(), "file name": "settlements_2.xml"}[by]
    done = run(config, "--approve", key)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("applied    settlements_2.xml")
    assert sorted(debts(bitrix_db_url).values()) == [0.0] * 8 + [1000.0] * 2
    assert ledger_rows(bitrix_db_url)[-1] == ("settlements_2.xml", "applied")
    assert (remote_dir / "processed" / "settlements_2.xml").exists()


def test_an_empty_full_export_is_held(config: Path, bitrix_db_url: str, remote_dir: Path, sshd: SshServer) -> None:
    sshd.put(remote_dir / "settlements_1.xml", export(1))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", export(0, "2026-11-25T11:00:00"))
    done = run(config)
    assert done.returncode == 5
    assert "lists no counterparty while the site knows 1" in done.stdout


# ---------------------------------------------------------------- the summary check: any mismatch refuses


@pytest.mark.parametrize("what", ["counterparties", "payments", "documents"])
@pytest.mark.parametrize("delta", [+1, -1])
@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_any_summary_mismatch_refuses_the_file(tmp_path: Path, what: str, delta: int, fmt: str) -> None:
    cps = [counterparty(1, payments=2, documents=2), counterparty(2, payments=2, documents=2)]
    data = (xml_export if fmt == "xml" else json_export)(cps)
    right = {"counterparties": 2, "payments": 4, "documents": 4}
    if fmt == "xml":
        old = f'{what}="{right[what]}"'
        data = data.replace(old.encode(), f'{what}="{right[what] + delta}"'.encode())
    else:
        summary = data.rindex(b'"summary"')
        key = f'"{what}": {right[what]}'.encode()
        assert key in data[summary:]
        data = data[:summary] + data[summary:].replace(key, f'"{what}": {right[what] + delta}'.encode())
    path = tmp_path / f"s.{fmt}"
    path.write_bytes(data)

    done = syncd("validate", path)

    assert done.returncode == 4, done.stdout + done.stderr
    assert f"the summary says {right[what] + delta} {what} but the file holds {right[what]}" in done.stdout


def test_a_matching_summary_passes(tmp_path: Path) -> None:
    path = tmp_path / "s.xml"
    path.write_bytes(xml_export([counterparty(1, payments=2, documents=2)]))
    assert syncd("validate", path).returncode == 0


# ---------------------------------------------------------------- --if-stale


def test_if_stale_with_the_database_unreachable_runs_and_reports_7(config: Path, bitrix_db_url: str) -> None:
    host = bitrix_db_url.split("@", 1)[1].split("/", 1)[0]
    config.write_text(config.read_text().replace(host, "127.0.0.1:1"))
    done = run(config, "--if-stale", "90m", "--quiet")
    assert done.returncode == 7, done.stdout + done.stderr
    assert "cannot reach the database" in done.stderr  # cron mails this


def test_if_stale_counts_only_a_run_that_succeeded(config: Path, bitrix_db_url: str, remote_dir: Path,
                                                   sshd: SshServer) -> None:
    sshd.put(remote_dir / "settlements_1.xml", BROKEN)
    assert run(config, "--quiet").returncode == 4  # a recent run, but not a success
    sshd.put(remote_dir / "settlements_2.xml", export(1))
    done = run(config, "--if-stale", "90m", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ledger_rows(bitrix_db_url)[-1] == ("settlements_2.xml", "applied")


# ---------------------------------------------------------------- the lock, checked again right before each commit


def test_a_lock_taken_by_another_runner_mid_run_stops_the_commit(config: Path, bitrix_db_url: str,
                                                                   remote_dir: Path, sshd: SshServer) -> None:
    sshd.put(remote_dir / "settlements_1.xml", export(2))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", xml_export([counterparty(1, debt="5.00"), counterparty(2)],
                                               generated_at="2026-11-25T11:00:00"))
    name = "syncd:" + bitrix_db_url.rsplit("/", 1)[1].split("?")[0]
    thief = create_engine(bitrix_db_url).connect()
    try:
        with row_locked(bitrix_db_url, guid(1)):
            proc = subprocess.Popen([sys.executable, "-m", "syncd", "run-once", "--config", str(config)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
            wait_for("the run waiting on the locked row", lambda: waiting_for_row_lock(bitrix_db_url) or
                     proc.poll() is not None, timeout=60)
            assert proc.poll() is None, proc.communicate()
            # Another runner (another host) takes the named lock once the run's lock connection drops.
            holder = thief.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": name}).scalar()
            assert holder is not None
            thief.execute(text(f"KILL CONNECTION {int(holder)}"))
            assert thief.execute(text("SELECT GET_LOCK(:n, 10)"), {"n": name}).scalar() == 1
        out, err = proc.communicate(timeout=120)
    finally:
        thief.close()
    assert proc.returncode == 8, out + err
    assert "lost the database lock" in err
    assert debts(bitrix_db_url)[guid(1)] == 1000.0  # rolled back
    assert ledger_rows(bitrix_db_url) == [("settlements_1.xml", "applied")]
    assert (remote_dir / "settlements_2.xml").exists()  # stays for the next run


def test_two_runners_contend_and_the_second_exits_8(config: Path, bitrix_db_url: str, remote_dir: Path,
                                                     sshd: SshServer) -> None:
    sshd.put(remote_dir / "settlements_1.xml", export(2))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", xml_export([counterparty(1, debt="5.00"), counterparty(2)],
                                               generated_at="2026-11-25T11:00:00"))
    with row_locked(bitrix_db_url, guid(1)):
        first = subprocess.Popen([sys.executable, "-m", "syncd", "run-once", "--config", str(config)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        wait_for("the first run waiting on the locked row",
                 lambda: waiting_for_row_lock(bitrix_db_url) or first.poll() is not None, timeout=60)
        second = run(config)
        quiet = run(config, "--quiet")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert second.returncode == 8 and "another syncd run holds" in second.stderr and f"pid {first.pid}" in second.stderr
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (8, "", "")
    assert ledger_rows(bitrix_db_url) == [("settlements_1.xml", "applied"), ("settlements_2.xml", "applied")]
    assert debts(bitrix_db_url)[guid(1)] == 5.0


# ---------------------------------------------------------------- metrics


def textfile(path: Path) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in path.read_text().splitlines() if line and not line.startswith("#")}


def test_every_metric_of_the_readme_in_the_textfile(config: Path, remote_dir: Path, sshd: SshServer,
                                                    tmp_path: Path) -> None:
    prom = tmp_path / "syncd.prom"
    assert run(config, "--quiet", "--metrics-file", prom).returncode == 0
    before = textfile(prom)
    assert math.isnan(before["syncd_data_age_seconds"])  # nothing applied yet
    assert math.isnan(before["syncd_last_success_timestamp_seconds"]) is False  # that run succeeded

    sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1, payments=3, documents=2), counterparty(2)]))
    sshd.put(remote_dir / "settlements_0.xml", BROKEN)
    sshd.put(remote_dir / "settlements_9.xml", export(1), age=None)
    t0 = time.time()
    assert run(config, "--quiet", "--metrics-file", prom).returncode == 4
    t1 = time.time()
    m = textfile(prom)

    for outcome, n in {"applied": 1, "duplicate": 0, "superseded": 0, "held": 0, "rejected": 1, "waiting": 1}.items():
        assert m[f'syncd_files_total{{outcome="{outcome}"}}'] == n, outcome
    for block, inserted in (("balance", 2), ("payments", 3), ("documents", 2)):
        for action in ("inserted", "updated", "unchanged", "deleted"):
            assert m[f'syncd_rows_total{{action="{action}",block="{block}"}}'] == (inserted if action == "inserted"
                                                                                   else 0)
    assert m["syncd_up"] == 1 and m["syncd_last_exit_code"] == 4
    assert t0 - 1 <= m["syncd_last_run_timestamp_seconds"] <= t1 + 1
    assert m["syncd_last_success_timestamp_seconds"] < t0  # the earlier run, not this one (exit 4)
    assert 0 <= m["syncd_run_duration_seconds"] <= t1 - t0 + 1
    assert abs(m["syncd_data_age_seconds"] - (t1 - AS_OF_UTC)) < 120
    assert m["syncd_runs_cut_total"] == 0  # run-once is never cut; the daemon's count: test_daemon


def test_syncd_up_is_0_when_the_source_is_unreachable(config: Path, sshd: SshServer, tmp_path: Path) -> None:
    config.write_text(config.read_text().replace(f"port = {sshd.port}", "port = 1"))
    prom = tmp_path / "syncd.prom"
    assert run(config, "--quiet", "--metrics-file", prom).returncode == 6
    m = textfile(prom)
    assert m["syncd_up"] == 0 and m["syncd_last_exit_code"] == 6


# ---------------------------------------------------------------- check


def check(config: Path, *args: str) -> tuple[int, str]:
    done = syncd("check", "--config", config, *args)
    assert done.stdout.count("\n") == 1, done.stdout + done.stderr
    return done.returncode, done.stdout.strip()


def test_check_critical_when_the_database_is_unreachable(config: Path, bitrix_db_url: str) -> None:
    host = bitrix_db_url.split("@", 1)[1].split("/", 1)[0]
    config.write_text(config.read_text().replace(host, "127.0.0.1:1"))
    code, line = check(config, "--max-age", "1d")
    assert code == 2 and line.startswith("SYNCD CRITICAL - database unreachable"), line


def test_check_critical_when_the_newest_file_was_held(config: Path, remote_dir: Path, sshd: SshServer) -> None:
    sshd.put(remote_dir / "settlements_1.xml", export(10))
    assert run(config).returncode == 0
    assert check(config, "--max-age", "1d")[0] == 0
    sshd.put(remote_dir / "settlements_2.xml", export(1, "2026-11-25T11:00:00"))
    assert run(config).returncode == 5
    code, line = check(config, "--max-age", "1d")
    assert code == 2 and "last file settlements_2.xml was held" in line, line


@pytest.mark.parametrize("flag", ["--max-age", "--max-wait"])
def test_check_unknown_for_a_bad_duration(config: Path, flag: str) -> None:
    code, line = check(config, flag, "soon")
    assert code == 3 and line.startswith("SYNCD UNKNOWN - "), line
    assert "soon" in line


# ---------------------------------------------------------------- written for mutants that survived (docs/testing.md)


def test_a_large_duplicate_is_not_downloaded_and_has_an_empty_sha256(config: Path, bitrix_db_url: str,
                                                                      remote_dir: Path, sshd: SshServer) -> None:
    big = xml_export([counterparty(i, payments=3) for i in range(1, 2001)], export_id=guid(7, 3))
    assert len(big) > 1 << 20  # over 1 MiB: read only to its header first
    sshd.put(remote_dir / "settlements_1.xml", big)
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_1_again.xml", big)

    done = run(config)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("duplicate  settlements_1_again.xml")
    [again] = [r for r in imports(bitrix_db_url) if r["file_name"] == "settlements_1_again.xml"]
    assert (again["status"], again["sha256"]) == ("duplicate", "")
    assert (remote_dir / "processed" / "settlements_1_again.xml").exists()


@pytest.mark.parametrize("on_missing", ["keep", "delete", "zero"])
def test_an_empty_full_export_is_held_whatever_on_missing_says(bitrix_db_url: str, sshd: SshServer,
                                                               remote_dir: Path, tmp_path: Path,
                                                               on_missing: str) -> None:
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, bitrix_db_url, tmp_path / "state",
                          bitrix={"on_missing": on_missing})
    sshd.put(remote_dir / "settlements_1.xml", export(3))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", export(0, "2026-11-25T11:00:00"))
    done = run(config)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "lists no counterparty while the site knows 3" in done.stdout


@pytest.mark.parametrize(("on_missing", "missing", "expect"), [("delete", 20, 0), ("delete", 21, 5)])
def test_the_guard_holds_deletions_too(bitrix_db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path,
                                       on_missing: str, missing: int, expect: int) -> None:
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, bitrix_db_url, tmp_path / "state",
                          bitrix={"on_missing": on_missing})
    sshd.put(remote_dir / "settlements_1.xml", export(100))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", export(100 - missing, "2026-11-25T11:00:00", first=missing + 1))
    done = run(config)
    assert done.returncode == expect, done.stdout + done.stderr
    assert len(debts(bitrix_db_url)) == (100 - missing if expect == 0 else 100)


def test_the_counts_of_a_full_export_show_the_documents_it_took_away(config: Path, remote_dir: Path,
                                                                       sshd: SshServer) -> None:
    cps = [counterparty(i, documents=2 if i == 1 else 0) for i in range(1, 11)]
    sshd.put(remote_dir / "settlements_1.xml", xml_export(cps))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", xml_export(cps[1:], generated_at="2026-11-25T11:00:00"))
    done = run(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "balance +0 ~1 =9 -0, payments +0 ~0 =0 -0, documents +0 ~0 =0 -2" in done.stdout, done.stdout


@pytest.mark.parametrize("value", ["abc", "-1", "1.5"])
def test_a_summary_count_that_is_not_a_count_refuses_the_file(tmp_path: Path, value: str) -> None:
    path = tmp_path / "s.xml"
    path.write_bytes(xml_export([counterparty(1)]).replace(b'counterparties="1"', f'counterparties="{value}"'.encode()))
    done = syncd("validate", path)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "field counterparties" in done.stdout and "Traceback" not in done.stderr


def test_a_row_newer_than_a_full_export_is_not_taken_away_by_it(config: Path, bitrix_db_url: str,
                                                                 remote_dir: Path, sshd: SshServer) -> None:
    sshd.put(remote_dir / "settlements_1.xml", export(10, "2026-11-25T10:00:00"))
    sshd.put(remote_dir / "settlements_3.xml", xml_export([counterparty(11, debt="77.00")], mode="delta",
                                                          generated_at="2026-11-25T12:00:00"))
    assert run(config).returncode == 0
    # A full export older than the delta: counterparty 11 is newer than it, so not "missing" from it.
    sshd.put(remote_dir / "settlements_2.xml", export(10, "2026-11-25T11:00:00"))
    done = run(config)
    assert done.returncode == 0 and done.stdout.startswith("applied    settlements_2.xml"), done.stdout
    assert debts(bitrix_db_url)[guid(11)] == 77.0


def test_keep_keeps_even_an_approved_empty_export(bitrix_db_url: str, sshd: SshServer, remote_dir: Path,
                                                  tmp_path: Path) -> None:
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, bitrix_db_url, tmp_path / "state",
                          bitrix={"on_missing": "keep"})
    sshd.put(remote_dir / "settlements_1.xml", export(3))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", export(0, "2026-11-25T11:00:00"))
    assert run(config).returncode == 5  # held first: --approve names what is held
    done = run(config, "--approve", "settlements_2.xml")
    assert done.returncode == 0 and done.stdout.startswith("applied    settlements_2.xml"), done.stdout
    assert set(debts(bitrix_db_url).values()) == {1000.0}


def test_a_missing_counterparty_already_at_zero_is_confirmed_as_of_the_export(config: Path, bitrix_db_url: str,
                                                                              remote_dir: Path,
                                                                              sshd: SshServer) -> None:
    cps = [counterparty(1, debt="0")] + [counterparty(i) for i in range(2, 11)]
    sshd.put(remote_dir / "settlements_1.xml", xml_export(cps))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", xml_export(cps[1:], generated_at="2026-11-25T11:00:00"))
    done = run(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "balance +0 ~0 =10 -0" in done.stdout, done.stdout
    engine = create_engine(bitrix_db_url)
    with engine.connect() as conn:
        stamps = dict(conn.execute(text("SELECT UF_CONTRACTOR_XML_ID, UF_UPDATED_AT FROM contractor_balance")).all())
    engine.dispose()
    assert stamps[guid(1)] == stamps[guid(2)] == datetime(2026, 11, 25, 11, 0)


def test_a_full_export_as_old_as_the_newest_applied_is_not_superseded(config: Path, bitrix_db_url: str,
                                                                       remote_dir: Path, sshd: SshServer) -> None:
    sshd.put(remote_dir / "settlements_1.xml", export(2))
    assert run(config).returncode == 0
    # Another export of the same moment (a second 1C job): not older, so it applies.
    sshd.put(remote_dir / "settlements_1b.xml", xml_export([counterparty(1, debt="5.00"), counterparty(2)]))
    done = run(config)
    assert done.returncode == 0 and done.stdout.startswith("applied    settlements_1b.xml"), done.stdout
    assert debts(bitrix_db_url)[guid(1)] == 5.0


def test_check_ok_while_a_complete_file_waits_less_than_max_wait(config: Path, remote_dir: Path,
                                                                 sshd: SshServer) -> None:
    sshd.put(remote_dir / "settlements_1.xml", export(1))
    assert run(config).returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", export(1, "2026-11-25T11:00:00"), age=600)  # complete, 10 min
    code, line = check(config, "--max-age", "1d", "--max-wait", "1h")
    assert code == 0 and "files_waiting=1" in line, line
