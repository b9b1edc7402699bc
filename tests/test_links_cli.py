"""`syncd links …` through click's CliRunner: exit codes, tables, JSON, and nothing changed on wrong input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from syncd.cli import cli
from tests.bitrix_users import LinkSite, guid, make_link_site

INN_A = "7707083893"


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> LinkSite:
    return make_link_site(db_url, tmp_path, link_by=("manual", "user_field:UF_1C_CONTRACTOR_ID", "inn:UF_INN"))


@pytest.fixture
def config_file(site: LinkSite, tmp_path: Path) -> Path:
    path = tmp_path / "syncd.toml"
    url = site.engine.url.render_as_string(hide_password=False)
    path.write_text(
        f"""
[source]
type = "local"
path = "{tmp_path / 'exports'}"

[database]
url = "{url}"

[bitrix]
link_by = ["manual", "user_field:UF_1C_CONTRACTOR_ID", "inn:UF_INN"]

[state]
dir = "{tmp_path / 'state'}"
""",
        encoding="utf-8",
    )
    return path


def run(config_file: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["links", *args, "--config", str(config_file)])


def test_add_list_remove(site: LinkSite, config_file: Path) -> None:
    u = site.user("buyer", email="buyer@example.com")
    site.counterparty(guid(1), name="ООО Ромашка", payments=2)
    r = run(config_file, "add", guid(1), "buyer@example.com", "-m", "ticket 7")
    assert r.exit_code == 0, r.output
    assert f"linked GUID {guid(1)} (ООО Ромашка) to user {u} (buyer, buyer@example.com)" in r.output
    assert "rows changed: balance 1, payments 2, documents 1" in r.output
    assert site.user_of(guid(1)) == u

    r = run(config_file, "list")
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["KEY", "USER", "LOGIN"]
    assert f"GUID {guid(1)}" in lines[2] and "buyer" in lines[2] and "active" in lines[2] and "ticket 7" in lines[2]

    r = run(config_file, "list", "--json")
    data = json.loads(r.output)
    assert [(d["key"], d["user_id"], d["comment"]) for d in data] == [(guid(1), u, "ticket 7")]

    r = run(config_file, "remove", guid(1), "--json")
    assert r.exit_code == 0
    assert json.loads(r.output)["action"] == "removed"
    assert site.user_of(guid(1)) is None
    assert "no manual links" in run(config_file, "list").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "12345", "buyer"), "neither a counterparty GUID"),
        (("add", guid(1), "ghost"), "no Bitrix user with ID, login or e-mail 'ghost'"),
        (("add", guid(1), "sleeper"), "is not active"),
        (("remove", guid(1)), "no manual link"),
    ],
)
def test_wrong_input_exits_2_and_changes_nothing(site: LinkSite, config_file: Path, args: tuple[str, ...],
                                                 message: str) -> None:
    site.user("buyer")
    site.user("sleeper", active=False)
    site.counterparty(guid(1))
    r = run(config_file, *args)
    assert r.exit_code == 2
    assert message in r.stderr and "nothing was changed" in r.stderr
    assert site.sql("SELECT COUNT(*) FROM syncd_links")[0][0] == 0
    assert site.user_of(guid(1)) is None


def test_unmatched_table_and_json(site: LinkSite, config_file: Path) -> None:
    site.counterparty(guid(1), inn=INN_A, name="ООО Малый", debt=10.0)
    site.counterparty(guid(2), name="ООО Большой", debt=12345.5)
    site.counterparty(guid(3), debt=0.0)
    r = run(config_file, "unmatched")
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].split() == ["GUID", "INN", "KPP", "NAME", "DEBT", "OVERDUE", "CURRENCY"]
    assert lines[2].startswith(guid(2)) and "12 345.50" in lines[2]
    assert lines[3].startswith(guid(1)) and INN_A in lines[3]
    assert lines[-1] == "2 counterparties with debt and no user"
    data = json.loads(run(config_file, "unmatched", "--json", "--limit", "1").output)
    assert [(d["guid"], d["debt"]) for d in data] == [(guid(2), 12345.5)]


def test_refresh_and_conflicts(site: LinkSite, config_file: Path) -> None:
    a = site.user("a", fields={"UF_INN": INN_A})
    b = site.user("b", fields={"UF_INN": INN_A})
    site.counterparty(guid(1), inn=INN_A, name="ООО Двое")
    r = run(config_file, "refresh")
    assert r.exit_code == 0
    assert "rows changed balance 1, payments 1, documents 1; 1 of 1 counterparties linked" in r.output
    assert site.user_of(guid(1)) == a
    assert json.loads(run(config_file, "refresh", "--json").output)["changed"] == {
        "balance": 0, "payments": 0, "documents": 0,
    }
    r = run(config_file, "conflicts")
    assert r.exit_code == 0
    assert "several users" in r.output and f"inn:UF_INN → {a}, {b}" in r.output
    data = json.loads(run(config_file, "conflicts", "--json").output)
    assert data[0]["found"] == {"inn:UF_INN": [a, b]} and data[0]["user_id"] == a
    # A manual link settles the conflict.
    assert run(config_file, "add", guid(1), str(b)).exit_code == 0
    assert run(config_file, "conflicts").output.strip() == "no conflicts"
    assert site.user_of(guid(1)) == b


def test_missing_field_is_refused_at_start(site: LinkSite, config_file: Path) -> None:
    config_file.write_text(config_file.read_text().replace('"inn:UF_INN"', '"inn:UF_TAX_NUMBER"'))
    r = run(config_file, "refresh")
    assert r.exit_code == 7  # SchemaError is a DatabaseError
    assert "UF_TAX_NUMBER does not exist" in r.stderr


def test_unreachable_database_exits_7(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[source]\ntype = "local"\npath = "{tmp_path}"\n[database]\nurl = "mysql+pymysql://nobody@127.0.0.1:1/x"\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n'
    )
    r = run(path, "unmatched")
    assert r.exit_code == 7
    assert "syncd: error: database" in r.stderr
