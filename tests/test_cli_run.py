"""`syncd run-once` as a user runs it: a real process, a config file, the suite's sshd and MariaDB."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from tests.exports import counterparty, guid, json_export, xml_export
from tests.ops_helpers import syncd
from tests.rig.sshd import SshServer


def write_config(tmp_path: Path, sshd: SshServer, remote_dir: Path, db_url: str, **source: object) -> Path:
    rel = remote_dir.relative_to(sshd.home)
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in source.items())
    path = tmp_path / "syncd.toml"
    path.write_text(
        f"""
[source]
type = "sftp"
host = "{sshd.host}"
port = {sshd.port}
username = "{sshd.username}"
private_key = "{sshd.client_key}"
known_hosts = "{sshd.known_hosts}"
remote_dir = "{rel}"
min_age = "30s"
{extra}
[database]
url = "{db_url}"

[state]
dir = "{tmp_path / 'state'}"
""",
        encoding="utf-8",
    )
    return path


def debts(db_url: str) -> dict[str, float]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT UF_CONTRACTOR_XML_ID, UF_DEBT FROM contractor_balance")).all()
    engine.dispose()
    return {g: d for g, d in rows}


def test_run_once_over_sftp_applies_moves_and_reports(
    tmp_path: Path, sshd: SshServer, remote_dir: Path, bitrix_db_url: str
) -> None:
    db_url = bitrix_db_url
    cfg = write_config(tmp_path, sshd, remote_dir, db_url)
    sshd.put(remote_dir / "settlements_20261125_100000.xml", xml_export([counterparty(1), counterparty(2)]))
    sshd.put(remote_dir / "settlements_20261125_103000.json",
             json_export([counterparty(1, debt="10.00")], mode="delta", generated_at="2026-11-25T10:30:00"))
    sshd.put(remote_dir / "settlements_20261125_110000.xml", xml_export([counterparty(3)]), age=1)
    sshd.put(remote_dir / "settlements_20261125_113000.xml.tmp", b"<Settle", age=3600)

    done = syncd("run-once", "--config", cfg)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("waiting    settlements_20261125_110000.xml")
    assert lines[1].startswith("applied    settlements_20261125_100000.xml  [full, as of 2026-11-25 10:00:00 +03:00]")
    assert lines[2].startswith("applied    settlements_20261125_103000.json  [delta")
    assert lines[-1].startswith("summary: 2 applied, 0 duplicate, 0 superseded, 0 held, 0 rejected, 1 waiting")
    assert debts(db_url) == {guid(1): 10.0, guid(2): 1000.0}
    processed = sorted(p.name for p in (remote_dir / "processed").iterdir())
    assert processed == ["settlements_20261125_100000.xml", "settlements_20261125_103000.json"]
    assert (remote_dir / "settlements_20261125_110000.xml").exists()

    again = syncd("run-once", "--config", cfg, "--quiet")
    assert again.returncode == 0
    assert again.stdout == ""


def test_rejected_file_over_sftp_exits_4_and_moves_to_failed(
    tmp_path: Path, sshd: SshServer, remote_dir: Path, bitrix_db_url: str
) -> None:
    db_url = bitrix_db_url
    cfg = write_config(tmp_path, sshd, remote_dir, db_url)
    sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1, debt="abc")]))

    done = syncd("run-once", "--config", cfg)

    assert done.returncode == 4
    assert "rejected   settlements_1.xml" in done.stdout
    assert "abc" in done.stdout
    assert "Traceback" not in done.stderr
    assert (remote_dir / "failed" / "settlements_1.xml").exists()
    assert debts(db_url) == {}


def test_unknown_host_key_fails_the_run_with_the_fingerprint(
    tmp_path: Path, sshd: SshServer, remote_dir: Path, bitrix_db_url: str
) -> None:
    db_url = bitrix_db_url
    cfg = write_config(tmp_path, sshd, remote_dir, db_url)
    empty = sshd.empty_known_hosts(tmp_path / "known_hosts_empty")
    cfg.write_text(cfg.read_text().replace(str(sshd.known_hosts), str(empty)))
    sshd.put(remote_dir / "settlements_1.xml", xml_export([counterparty(1)]))

    done = syncd("run-once", "--config", cfg)

    assert done.returncode == 6
    assert "SHA256:" in done.stderr
    assert "Traceback" not in done.stderr
    assert debts(db_url) == {}


def test_bad_config_exits_3_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[source]\ntype = "local"\npath = "/tmp"\nmin_age = "soon"\n[database]\nurl = "sqlite://"\n')
    done = syncd("run-once", "--config", cfg)
    assert done.returncode == 3
    assert "source.min_age" in done.stderr
    assert "Traceback" not in done.stderr


def test_version_and_help() -> None:
    assert syncd("--version").stdout.startswith("syncd, version ")
    out = syncd("--help").stdout
    for command in ("run-once", "migrate", "validate"):
        assert command in out
