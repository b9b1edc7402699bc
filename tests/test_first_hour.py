"""The first hour of a new admin (issue 15): every command as the README writes it, every mistake
answered once and clearly. Each test runs `syncd` as the admin types it and asserts the exit code and
the text they see."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.exports import counterparty, xml_export
from tests.ops_helpers import env, free_port, imports, sql, syncd

README = Path(__file__).resolve().parent.parent / "README.md"
EXPORT = xml_export([counterparty(1), counterparty(2)], generated_at="2026-11-25T10:00:00")


@dataclass
class Site:
    config: Path
    folder: Path
    state: Path
    db_url: str  # root's, for the test's own queries
    password: str  # the syncd user's, what the env file holds

    def drop(self, name: str, data: bytes = EXPORT) -> None:
        (self.folder / name).write_bytes(data)
        os.utime(self.folder / name, (0, 0))


def write_toml(path: Path, folder: Path, url: str, state: Path, *, extra: str = "", source: str = "") -> Path:
    path.write_text(
        f'[source]\ntype = "local"\npath = "{folder}"\n{source}\n'
        f'[database]\nurl = "{url}"\npassword_env = "SYNCD_DB_PASSWORD"\n{extra}\n'
        f'[state]\ndir = "{state}"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def site(bitrix_db_url: str, tmp_path: Path) -> Iterator[Site]:
    """A Bitrix database with a user of its own whose password is in $SYNCD_DB_PASSWORD, a local source."""
    url = make_url(bitrix_db_url)
    user, password = f"u_{url.database}"[:32], "s3cret-Pw-15"
    for host in ("localhost", "127.0.0.1", "%"):
        sql(bitrix_db_url, f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
        sql(bitrix_db_url, f"GRANT ALL ON `{url.database}`.* TO '{user}'@'{host}'")
    folder, state = tmp_path / "exports", tmp_path / "state"
    folder.mkdir()
    own = url.set(username=user, password=None).render_as_string(hide_password=False)
    config = write_toml(tmp_path / "shop1.toml", folder, own, state)
    try:
        yield Site(config, folder, state, bitrix_db_url, password)
    finally:
        for host in ("localhost", "127.0.0.1", "%"):
            sql(bitrix_db_url, f"DROP USER IF EXISTS '{user}'@'{host}'")


def as_admin(site: Site, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return syncd(*args, extra_env={"SYNCD_DB_PASSWORD": site.password})


# ---------------------------------------------------------------- commands as documented

CONFIG_COMMANDS = [
    ("run-once",), ("daemon",), ("status",), ("check",), ("migrate",),
    ("links", "add", "7707083893", "1"), ("links", "remove", "7707083893"), ("links", "list"),
    ("links", "unmatched"), ("links", "conflicts"), ("links", "refresh"),
]


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=" ".join)
def test_config_before_and_after_every_command(command: tuple[str, ...], tmp_path: Path) -> None:
    missing = tmp_path / "shop1.toml"
    head = command[:2] if command[0] == "links" else command[:1]
    before = syncd("--config", missing, *command)
    after = syncd(*head, "-c", missing, *command[len(head):])
    for out in (before, after):
        assert "No such option" not in out.stderr
        assert out.returncode == 3, out.stdout + out.stderr  # check: UNKNOWN, the rest: bad configuration
        assert f"cannot read config {missing}" in out.stdout + out.stderr


def test_both_forms_work_on_a_real_site_and_after_wins_over_the_environment(site: Site, tmp_path: Path) -> None:
    first = as_admin(site, "--config", site.config, "migrate")
    assert first.returncode == 0, first.stderr
    again = as_admin(site, "migrate", "-c", site.config)
    assert (again.returncode, again.stdout.splitlines()[-1]) == (0, "nothing to do"), again.stderr
    site.drop("settlements_1.xml")
    done = syncd("-c", site.config, "run-once",
                 extra_env={"SYNCD_DB_PASSWORD": site.password, "SYNCD_CONFIG": str(tmp_path / "nope.toml")})
    assert done.returncode == 0 and done.stdout.startswith("applied    settlements_1.xml"), done.stderr
    status = syncd("status", extra_env={"SYNCD_DB_PASSWORD": site.password, "SYNCD_CONFIG": str(site.config)})
    assert status.returncode == 0 and "Last applied  settlements_1.xml" in status.stdout, status.stderr


HELP_COMMANDS = [c[:2] if c[0] == "links" else c[:1] for c in CONFIG_COMMANDS] + [("validate",), ("links",)]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=" ".join)
def test_every_help_shows_real_examples(command: tuple[str, ...]) -> None:
    out = syncd(*command, "--help")
    assert out.returncode == 0
    examples = out.stdout.split("Examples:")[1].strip().splitlines()
    typed = [line.strip() for line in examples if line.strip().startswith("syncd ")]
    assert typed and all(line.startswith("syncd " + " ".join(command)) for line in typed[:1]), out.stdout


def test_top_level_help_shows_config_and_completion_and_completion_works() -> None:
    out = syncd("--help")
    assert "-c, --config PATH" in out.stdout and "$SYNCD_CONFIG" in out.stdout
    assert 'eval "$(_SYNCD_COMPLETE=bash_source syncd)"' in out.stdout
    script = subprocess.run(["bash", "-c", "_SYNCD_COMPLETE=bash_source syncd"], capture_output=True, text=True,
                            env=env(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}"), timeout=60)
    assert script.returncode == 0 and "complete -o nosort -F _syncd_completion syncd" in script.stdout


# ---------------------------------------------------------------- secrets and errors


@pytest.mark.parametrize("command", [("run-once",), ("daemon",), ("status",), ("migrate",), ("links", "list")],
                         ids=" ".join)
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_password_env_unset_or_empty_is_exit_3_at_start(site: Site, command: tuple[str, ...],
                                                        value: str | None) -> None:
    extra = {} if value is None else {"SYNCD_DB_PASSWORD": value}
    base = {k: v for k, v in os.environ.items() if k != "SYNCD_DB_PASSWORD"}
    site.drop("settlements_1.xml")
    out = subprocess.run([sys.executable, "-m", "syncd", *command, "-c", str(site.config)], capture_output=True,
                         text=True, timeout=120, env={**base, **extra})
    assert out.returncode == 3, out.stdout + out.stderr
    assert ("syncd: error: database.password_env names $SYNCD_DB_PASSWORD, but that variable is not set or "
            "empty in syncd's environment") in out.stderr
    assert "Traceback" not in out.stderr and not imports(site.db_url)


def test_check_with_the_password_variable_unset_is_unknown(site: Site) -> None:
    out = syncd("check", "-c", site.config)
    assert out.returncode == 3
    assert out.stdout.startswith("SYNCD UNKNOWN - database.password_env names $SYNCD_DB_PASSWORD, but that")


def test_access_denied_names_the_variable_and_keeps_mysqls_words(site: Site) -> None:
    wrong = {"SYNCD_DB_PASSWORD": "not-the-password"}
    run = syncd("run-once", "-c", site.config, extra_env=wrong)
    assert run.returncode == 7
    assert "Access denied for user" in run.stderr and "(using password: YES)" in run.stderr
    assert "the password is the value of $SYNCD_DB_PASSWORD (database.password_env)" in run.stderr
    assert "not-the-password" not in run.stdout + run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr  # one failure, one line
    check = syncd("check", "-c", site.config, extra_env=wrong)
    assert check.returncode == 2 and "(using password: YES); the password is the value of $SYNCD_DB" in check.stdout
    status = syncd("status", "-c", site.config, extra_env=wrong)
    assert status.returncode == 7 and "(using password: YES)" in status.stdout


def test_one_failure_is_printed_once_in_text_and_in_json(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    config = write_toml(tmp_path / "shop1.toml", folder, f"mysql+pymysql://syncd@127.0.0.1:{free_port()}/shop",
                        tmp_path / "state")
    secret = {"SYNCD_DB_PASSWORD": "pw-for-nothing"}
    text = syncd("run-once", "-c", config, extra_env=secret)
    assert text.returncode == 7
    assert text.stderr.count("Can't connect to MySQL server") == 1, text.stderr
    assert text.stderr.startswith("syncd: error: cannot reach the database")
    assert "run failed" not in text.stdout and text.stdout.startswith("summary: 0 applied")
    as_json = syncd("run-once", "-c", config, "--log-format", "json", extra_env=secret)
    lines = [json.loads(line) for line in as_json.stderr.splitlines()]  # every line is JSON, the last too
    assert [(d["level"], "Can't connect" in d["msg"]) for d in lines] == [("error", True)], as_json.stderr
    bad = syncd("run-once", "--log-format", "json", "-c", tmp_path / "missing.toml")
    assert bad.returncode == 3 and json.loads(bad.stderr)["msg"].startswith("cannot read config")


def test_status_and_check_on_a_database_not_migrated(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    config = tmp_path / "shop1.toml"
    config.write_text(f'[source]\ntype = "local"\npath = "{folder}"\n[database]\nurl = "{db_url}"\n'
                      f'[state]\ndir = "{tmp_path / "state"}"\n', encoding="utf-8")
    status = syncd("status", "-c", config)
    assert status.returncode == 7
    assert "unreachable" not in status.stdout
    assert "not migrated (1146 Table" in status.stdout and f"run `syncd migrate -c {config}`" in status.stdout
    check = syncd("check", "-c", config)
    assert check.returncode == 2 and check.stdout.startswith("SYNCD CRITICAL - database not migrated (1146")
    assert "unreachable" not in check.stdout and "syncd migrate" in check.stdout
    as_json = json.loads(syncd("status", "-c", config, "--json").stdout)
    assert as_json["database"]["migrated"] is False


def test_sftp_keys_under_type_local_and_a_bad_port_name_the_key(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    mixed = write_toml(tmp_path / "a.toml", folder, "mysql+pymysql://syncd@127.0.0.1:3306/shop", tmp_path / "s",
                       source='host = "1c.example.com"\nusername = "bitrix"\n')
    out = syncd("status", "-c", mixed)
    assert out.returncode == 3
    assert 'source.host belongs to type = "sftp"; with type = "local" remove source.host, source.username' in out.stderr
    port = write_toml(tmp_path / "b.toml", folder, "mysql+pymysql://syncd@127.0.0.1:33o6/shop", tmp_path / "s")
    for cmd in ("run-once", "status", "migrate"):
        out = syncd(cmd, "-c", port)
        assert out.returncode == 3, out.stderr
        assert "database.url: the port '33o6' is not a number" in out.stderr and "internal error" not in out.stderr


def test_env_file_instruction_of_the_readme_lets_the_unprivileged_user_read_it(tmp_path: Path) -> None:
    """The README's one instruction for the env file, applied as written (syncd → nogroup), read as nobody."""
    if os.geteuid() != 0:
        pytest.skip("needs root to change owners and to act as nobody")
    text = README.read_text(encoding="utf-8")
    assert "chmod 0600 /etc/syncd" not in text  # no second, conflicting instruction
    made = re.search(r"^install -d -m (\d+) -o root -g syncd /etc/syncd$", text, re.M)
    given = re.search(r"^chown (root:syncd) /etc/syncd/shop1.env && chmod (\d+) /etc/syncd/shop1.env$", text, re.M)
    assert made and given
    etc = Path(f"/tmp/syncd-etc-{os.getpid()}")  # tmp_path's parents are not open to nobody
    subprocess.run(["install", "-d", "-m", made.group(1), "-o", "root", "-g", "nogroup", str(etc)], check=True)
    try:
        env_file = etc / "shop1.env"
        env_file.write_text("SYNCD_DB_PASSWORD=s3cret\n", encoding="utf-8")
        env_file.chmod(0o600)
        read = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-c",
                f"set -a; . {env_file}; set +a; echo $SYNCD_DB_PASSWORD"]
        assert subprocess.run(read, capture_output=True, text=True).returncode != 0  # the old 0600: cron fails
        subprocess.run(["chown", given.group(1).replace("syncd", "nogroup"), str(env_file)], check=True)
        subprocess.run(["chmod", given.group(2), str(env_file)], check=True)
        out = subprocess.run(read, capture_output=True, text=True)
        assert (out.returncode, out.stdout) == (0, "s3cret\n"), out.stderr
        other = subprocess.run(["setpriv", "--reuid=nobody", "--regid=12345", "--clear-groups", "cat",
                                str(env_file)], capture_output=True, text=True)
        assert other.returncode != 0  # not the group: cannot read
    finally:
        subprocess.run(["rm", "-rf", str(etc)], check=True)


# ---------------------------------------------------------------- times and words


def test_every_time_carries_its_zone_the_same_in_every_command(site: Site) -> None:
    assert as_admin(site, "migrate", "-c", site.config).returncode == 0
    site.drop("settlements_1.xml")
    done = as_admin(site, "run-once", "-c", site.config)
    assert "[full, as of 2026-11-25 10:00:00 +03:00]" in done.stdout, done.stdout
    status = as_admin(site, "status", "-c", site.config)
    assert "Data as of    2026-11-25 10:00:00 +03:00" in status.stdout, status.stdout
    assert re.search(r"^Last applied  settlements_1\.xml .* at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+03:00, ",
                     status.stdout, re.M)
    assert re.search(r"^  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+03:00 +once ", status.stdout, re.M)
    data = json.loads(as_admin(site, "status", "-c", site.config, "--json").stdout)
    assert data["data_as_of"] == "2026-11-25T10:00:00+03:00"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+03:00$", data["last_applied"]["finished_at"])
    assert "0 files waiting" in status.stdout


def test_status_during_a_run_shows_applying_now(site: Site) -> None:
    from syncd import config as config_mod
    from syncd.plumbing.lock import RunLock

    assert as_admin(site, "migrate", "-c", site.config).returncode == 0
    site.drop("settlements_1.xml")
    os.environ["SYNCD_DB_PASSWORD"] = site.password
    try:
        with RunLock(config_mod.load(site.config)):
            during = as_admin(site, "status", "-c", site.config)
            as_json = json.loads(as_admin(site, "status", "-c", site.config, "--json").stdout)
    finally:
        del os.environ["SYNCD_DB_PASSWORD"]
    assert re.search(rf"^Running       applying now \(pid {os.getpid()} on \S+, since .* \+03:00\)$",
                     during.stdout, re.M), during.stdout
    assert re.search(rf"^  settlements_1\.xml  applying now \(pid {os.getpid()} ", during.stdout, re.M)
    assert "1 file waiting" in during.stdout
    assert as_json["running"]["pid"] == os.getpid() and as_json["running"]["since"].endswith("+03:00")
    after = as_admin(site, "status", "-c", site.config)
    assert "applying now" not in after.stdout and "  settlements_1.xml  ready" in after.stdout


def test_held_is_said_once_in_check_and_status(site: Site) -> None:
    assert as_admin(site, "migrate", "-c", site.config).returncode == 0
    site.drop("settlements_1.xml", xml_export([counterparty(i) for i in range(1, 11)]))
    assert as_admin(site, "run-once", "-c", site.config).returncode == 0
    site.drop("settlements_2.xml", xml_export([counterparty(1)], generated_at="2026-11-25T11:00:00"))
    held = as_admin(site, "run-once", "-c", site.config)
    assert held.returncode == 5
    check = as_admin(site, "check", "-c", site.config)
    assert check.returncode == 2 and "was held: " in check.stdout and "held: held:" not in check.stdout
    status = as_admin(site, "status", "-c", site.config)
    assert "LAST FILE HELD: settlements_2.xml: " in status.stdout and "held: held:" not in status.stdout
    wrong = as_admin(site, "run-once", "-c", site.config, "--approve", "settlements_3.xml")
    assert wrong.returncode == 2
    assert ("--approve settlements_3.xml: nothing is held (or superseded) under that export id or file name; "
            "held now: ") in wrong.stderr
    assert "(settlements_2.xml). Nothing was applied" in wrong.stderr
    assert [r["status"] for r in imports(site.db_url)] == ["applied", "held"]


def test_validate_counts_in_the_singular(tmp_path: Path) -> None:
    one = tmp_path / "settlements_1.xml"
    one.write_bytes(xml_export([counterparty(1, payments=1)]))
    out = syncd("validate", one)
    assert out.returncode == 0
    assert "1 counterparty, 1 payment, " in out.stdout, out.stdout


def test_export_format_doc_says_validate_exits_4() -> None:
    doc = (README.parent / "docs" / "export-format.md").read_text(encoding="utf-8")
    assert "1: has problems" not in doc and "4: has problems" in doc
    bad = syncd("validate", README)  # not an export
    assert bad.returncode == 4


# ---------------------------------------------------------------- the README's commands, as written


def _section(text: str, title: str) -> str:
    start = text.index(f"\n{title}\n")
    level = title.split()[0]
    rest = text[start + len(title) + 2:]
    end = re.search(rf"^{level} ", rest, re.M)
    return rest[: end.start()] if end else rest


def readme_commands() -> list[str]:
    """The set-up and operations commands of the README that talk to syncd, in the order an admin runs
    them: the numbered steps of "Install", the shell blocks of "Operations / Install" and "Upgrading"
    (syncd, the env file), the commands of "Watching it"."""
    text = README.read_text(encoding="utf-8")
    found = re.findall(r"^\d+\. `((?:syncd |set -a)[^`]+)`", _section(text, "## Install"), re.M)
    for title in ("### Install", "### Upgrading"):
        for block in re.findall(r"```sh\n(.*?)```", _section(text, title), re.S):
            for line in block.splitlines():
                line = line.split("  #")[0].strip()
                if re.match(r"^(syncd |set -a|chown \S+ /etc/syncd/shop1\.env)", line):
                    found.append(line)
    for span in re.findall(r"`(syncd [^`]+)`", _section(text, "### Watching it")):
        if "<" not in span:
            found.append(re.sub(r"\s*\[[^\]]*\]", "", span))
    return found


def test_readme_setup_and_operations_commands_run_as_written(site: Site, tmp_path: Path) -> None:
    commands = readme_commands()
    typed = " | ".join(commands)
    for must in ("syncd --config /etc/syncd/shop1.toml migrate", "syncd --config /etc/syncd/shop1.toml run-once",
                 "syncd migrate -c /etc/syncd/shop1.toml", "syncd run-once -c /etc/syncd/shop1.toml",
                 "set -a; . /etc/syncd/shop1.env; set +a", "syncd status", "syncd check --max-age 2h"):
        assert must in typed, typed
    env_file = tmp_path / "shop1.env"
    env_file.write_text(f"SYNCD_DB_PASSWORD={site.password}\n", encoding="utf-8")
    sample = tmp_path / "export.xml"
    sample.write_bytes(EXPORT)
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    site.drop("settlements_20261125_100000.xml")
    script = ["set -e"]
    for command in commands:
        line = (command.replace("/etc/syncd/shop1.toml", str(site.config))
                .replace("/etc/syncd/shop1.env", str(env_file))
                .replace("/path/to/an/export.xml", str(sample))
                .replace("/var/lib/node_exporter/textfile", str(textfile))
                .replace("root:syncd", "root:root"))
        script += [f"echo '$ {command}'", line]
    out = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, text=True, timeout=600,
                         env=env(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                                 SYNCD_CONFIG=str(site.config)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "applied    settlements_20261125_100000.xml" in out.stdout
    assert "Data as of    2026-11-25 10:00:00 +03:00" in out.stdout
    assert "SYNCD OK - last export applied" in out.stdout
    assert [r["status"] for r in imports(site.db_url)] == ["applied"]
    assert site.password not in out.stdout + out.stderr


def test_log_masking_keeps_mysqls_yes_and_no_and_still_masks_passwords() -> None:
    from syncd.plumbing.logs import mask

    said = "1045 Access denied for user 'syncd'@'localhost' (using password: YES)"
    assert mask(said) == said and mask(said.replace("YES", "NO")) == said.replace("YES", "NO")
    assert mask("password: hunter22 and password=YESman") == "password: *** and password=***"


def test_a_source_failure_is_printed_once(site: Site) -> None:
    assert as_admin(site, "migrate", "-c", site.config).returncode == 0
    site.folder.rmdir()
    out = as_admin(site, "run-once", "-c", site.config)
    assert out.returncode == 6
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("syncd: error: "), out.stderr
    assert out.stdout.startswith("summary: 0 applied") and "run failed" not in out.stdout
