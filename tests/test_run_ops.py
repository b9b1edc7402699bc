"""run-once for operations (lock, --if-stale, --metrics-file, quiet), status, check, and no secret in any output."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.exports import counterparty, xml_export
from tests.ops_helpers import imports, prepare_database, runs, sql, syncd, write_config
from tests.rig.mariadb import MariaDB
from tests.rig.sshd import SshServer, running_sshd, set_age


@pytest.fixture
def config(db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path) -> Path:
    prepare_database(db_url)
    return write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state")


def test_locked_run_exits_8_and_is_silent_with_quiet(
    config: Path, db_url: str, tmp_path: Path, sshd: SshServer, remote_dir: Path
) -> None:
    from syncd import config as config_mod
    from syncd.plumbing.lock import RunLock

    sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1)]))
    with RunLock(config_mod.load(config)):
        loud = syncd("run-once", "--config", config)
        quiet = syncd("run-once", "--config", config, "--quiet")
    assert loud.returncode == 8 and f"pid {os.getpid()}" in loud.stderr
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (8, "", "")
    assert not imports(db_url)
    assert [r["exit_code"] for r in runs(db_url)] == [8, 8]


def test_if_stale_does_nothing_after_a_recent_success(
    config: Path, db_url: str, sshd: SshServer, remote_dir: Path
) -> None:
    assert syncd("run-once", "--config", config, "--quiet").returncode == 0
    sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1)]))
    skipped = syncd("run-once", "--config", config, "--if-stale", "90m", "--quiet")
    assert (skipped.returncode, skipped.stdout, skipped.stderr) == (0, "", "")
    assert not imports(db_url) and (remote_dir / "settlements_1.xml").exists()
    assert len(runs(db_url)) == 1  # a skip is not a run
    # Once the last success is older than the threshold, cron steps in.
    sql(db_url, "UPDATE syncd_runs SET finished_at = finished_at - INTERVAL 2 HOUR")
    stale = syncd("run-once", "--config", config, "--if-stale", "90m", "--quiet")
    assert (stale.returncode, stale.stdout) == (0, ""), stale.stderr
    assert [r["status"] for r in imports(db_url)] == ["applied"]
    assert runs(db_url)[-1]["trigger"] == "cron"


def test_metrics_file(config: Path, db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1, payments=3), counterparty(2)]))
    prom = tmp_path / "textfile" / "syncd.prom"
    prom.parent.mkdir()
    result = syncd("run-once", "--config", config, "--quiet", "--metrics-file", prom)
    assert result.returncode == 0, result.stderr
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in prom.read_text().splitlines() if line and not line.startswith("#")}
    assert values['syncd_files_total{outcome="applied"}'] == 1
    assert values['syncd_rows_total{action="inserted",block="payments"}'] == 3
    assert values['syncd_rows_total{action="inserted",block="balance"}'] == 2
    assert values["syncd_up"] == 1 and values["syncd_last_exit_code"] == 0
    now = time.time()
    assert now - 300 < values["syncd_last_success_timestamp_seconds"] <= now
    as_of = datetime(2026, 11, 25, 7, 0, tzinfo=UTC).timestamp()  # generatedAt 10:00 in Moscow, the default zone
    assert abs(values["syncd_data_age_seconds"] - (now - as_of)) < 300
    assert [p.name for p in prom.parent.iterdir()] == ["syncd.prom"]  # no temporary file left behind


def check(config: Path | str, *args: str) -> tuple[int, str]:
    result = syncd("check", "--config", config, *args)
    assert result.stdout.count("\n") == 1, result.stdout + result.stderr
    return result.returncode, result.stdout.strip()


def test_check_states(config: Path, db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    code, line = check(tmp_path / "missing.toml")
    assert code == 3 and line.startswith("SYNCD UNKNOWN - cannot read config")

    code, line = check(config)
    assert code == 2 and line.startswith("SYNCD CRITICAL - no export applied yet")

    sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1)], generated_at="2026-11-25T10:00:00"))
    assert syncd("run-once", "--config", config, "--quiet").returncode == 0
    code, line = check(config, "--max-age", "2h")
    assert code == 0, line
    assert line.startswith("SYNCD OK - last export applied ")
    assert " | age=" in line and ";;7200 " in line and "files_waiting=0" in line

    # A complete file nobody picked up for over --max-wait: WARNING.
    late = sshd.put(remote_dir / "settlements_2.xml", xml_export([counterparty(1)]))
    set_age(late, 2 * 3600)
    code, line = check(config, "--max-wait", "1h")
    assert code == 1 and "1 complete file waiting on the source for over 60m" in line, line
    assert re.search(r"\(oldest 2h0\dm\)", line), line  # the file's age, 2 h (and the seconds this test took)
    assert "files_waiting=1" in line

    # Too long since the last apply: CRITICAL.
    sql(db_url, "UPDATE syncd_imports SET finished_at = finished_at - INTERVAL 3 HOUR")
    code, line = check(config, "--max-age", "2h")
    assert code == 2 and "last export applied 3h00m ago (more than 2h00m)" in line, line

    # The newest file was rejected: CRITICAL with the reason.
    late.unlink()
    sshd.put(remote_dir / "settlements_3.xml", b"<SettlementsExport formatVersion='1'>broken")
    assert syncd("run-once", "--config", config, "--quiet").returncode == 4
    code, line = check(config, "--max-age", "1d")
    assert code == 2 and "last file settlements_3.xml was rejected" in line, line

    # The source cannot be reached: CRITICAL.
    text = config.read_text().replace(f"port = {sshd.port}", "port = 1")
    unreachable = tmp_path / "unreachable.toml"
    unreachable.write_text(text)
    code, line = check(unreachable, "--max-age", "1d")
    assert code == 2 and "source unreachable" in line, line


def test_status_table_and_json(config: Path, db_url: str, sshd: SshServer, remote_dir: Path) -> None:
    export = xml_export([counterparty(1, debt="100.00"), counterparty(2, debt="0")], generated_at="2026-11-25T10:00:00")
    sshd.put(remote_dir / "settlements_1.xml", export)
    assert syncd("run-once", "--config", config, "--quiet").returncode == 0
    sshd.put(remote_dir / "settlements_2.xml", xml_export([counterparty(1)]), age=None)  # too young: not yet

    table = syncd("status", "--config", config)
    assert table.returncode == 0, table.stderr
    out = table.stdout
    assert "Last applied  settlements_1.xml (full" in out
    assert "Counterparties with a debt but no site user: 1" in out
    assert "1 file waiting (0 complete, 1 not yet)" in out and "settlements_2.xml" in out
    assert "Recent runs" in out and " once " in out

    data = json.loads(syncd("status", "--config", config, "--json").stdout)
    assert data["last_applied"]["file_name"] == "settlements_1.xml"
    assert data["data_as_of"] == "2026-11-25T10:00:00+03:00"  # the same instant, in bitrix.timezone
    assert data["counterparties_without_user"] == 1
    assert data["runs"][0]["exit_code"] == 0 and data["runs"][0]["trigger"] == "once"
    assert [w["name"] for w in data["waiting"]] == ["settlements_2.xml"]
    assert data["database"]["error"] is None and data["source"]["error"] is None


def test_no_secret_in_any_output(mariadb: MariaDB, db_url: str, remote_dir: Path, tmp_path: Path) -> None:
    prepare_database(db_url)
    name = db_url.rsplit("/", 1)[1].split("?")[0]
    db_secret = "Db-s3cret-Xq7Lm2"
    with mariadb.admin() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS 'syncd_{name}'@'%' IDENTIFIED BY '{db_secret}'")
        cur.execute(f"GRANT ALL ON `{name}`.* TO 'syncd_{name}'@'%'")
    url = db_url.replace("root:@", f"syncd_{name}@").replace("root@", f"syncd_{name}@")
    with running_sshd(password=True) as server:
        assert server.password
        folder = server.make_dir()
        config = write_config(tmp_path / "syncd.toml", server, folder, url, tmp_path / "state",
                              source={"private_key": None, "password_env": "SFTP_PASSWORD"},
                              database={"password_env": "DB_PASSWORD"})
        config.write_text(config.read_text().replace(f'private_key = "{server.client_key}"\n', ""))
        server.put(folder / "settlements_1.xml", xml_export([counterparty(1)]))
        secrets = {"DB_PASSWORD": db_secret, "SFTP_PASSWORD": server.password}
        outputs = []
        for args in (["-v", "run-once"], ["-v", "run-once", "--log-format", "json"], ["status"], ["check"]):
            r = syncd(*args, "--config", config, extra_env=secrets)
            outputs.append(r.stdout + r.stderr)
        assert "applied" in outputs[0], outputs[0]
        # A failing run too: wrong database password, the message must still not echo anything secret.
        bad = syncd("-v", "run-once", "--config", config, extra_env={**secrets, "DB_PASSWORD": "Wr0ng-pass-Zz9"})
        outputs.append(bad.stdout + bad.stderr)
        assert bad.returncode == 7
        # A URL with the password in it, logged by the debug output of SQLAlchemy/PyMySQL.
        inline = tmp_path / "inline.toml"
        inline.write_text(config.read_text().replace(f"syncd_{name}@", f"syncd_{name}:{db_secret}@"))
        r = syncd("-v", "run-once", "--config", inline, extra_env={"SFTP_PASSWORD": server.password})
        outputs.append(r.stdout + r.stderr)
    text = "\n".join(outputs)
    assert "DEBUG" in text  # the verbose runs did log
    for secret in (db_secret, server.password, "Wr0ng-pass-Zz9"):
        assert secret not in text
