"""`syncd migrate` on a real MariaDB (and on SQLite, for the demo): blocks made as the Bitrix admin makes them."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Connection, Engine, MetaData, inspect, select, text

from syncd import ledger
from syncd.bitrix import core
from syncd.bitrix.migrate import (
    check_blocks,
    migrate,
    require_blocks,
    resolve_blocks,
    upgrade_own_tables,
)
from syncd.bitrix.owntables import alembic_config, head_revision
from syncd.bitrix.schema import block_specs
from syncd.cli import cli
from syncd.config import BitrixConfig, BlockNames, DatabaseConfig
from syncd.errors import SchemaError
from syncd.plumbing.db import make_engine
from tests.test_phpserialize import ADMIN_SETTINGS

CFG = BitrixConfig(timezone=ZoneInfo("Europe/Moscow"))
SPECS = block_specs(CFG.blocks)
MYSQL_TYPES = {"string": "text", "integer": "int", "double": "double", "date": "date", "datetime": "datetime"}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(DatabaseConfig(db_url))
    yield eng
    eng.dispose()


@pytest.fixture
def site(engine: Engine) -> Engine:
    """A database with a stand-in Bitrix core and nothing of syncd's."""
    core.create_stand_in_core(engine)
    return engine


def q(conn: Connection, sql: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def columns(conn: Connection, table: str) -> dict[str, dict[str, Any]]:
    rows = q(
        conn,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, EXTRA, COLUMN_KEY FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t ORDER BY ORDINAL_POSITION",
        t=table,
    )
    return {r["COLUMN_NAME"]: r for r in rows}


def indexes(conn: Connection, table: str) -> dict[str, tuple[bool, list[tuple[str, int | None]]]]:
    """index name -> (unique, [(column, prefix length)])."""
    rows = q(
        conn,
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS"
        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        t=table,
    )
    out: dict[str, tuple[bool, list[tuple[str, int | None]]]] = {}
    for r in rows:
        _, cols = out.setdefault(r["INDEX_NAME"], (not r["NON_UNIQUE"], []))
        cols.append((r["COLUMN_NAME"], r["SUB_PART"]))
    return out


def user_fields(conn: Connection, hl_id: int) -> dict[str, dict[str, Any]]:
    rows = q(conn, "SELECT * FROM b_user_field WHERE ENTITY_ID = :e ORDER BY SORT", e=f"HLBLOCK_{hl_id}")
    return {r["FIELD_NAME"]: r for r in rows}


def hl_id(conn: Connection, name: str) -> int:
    return int(conn.execute(text("SELECT ID FROM b_hlblock_entity WHERE NAME = :n"), {"n": name}).scalar_one())


def ledger_diffs(conn: Connection, tables: Collection[str] | None = None) -> list[Any]:
    """How the syncd_* tables Alembic made differ from syncd/ledger.py (types and defaults included)."""
    names = set(ledger.metadata.tables) if tables is None else set(tables)
    opts: dict[str, Any] = {
        "compare_type": True,
        "compare_server_default": True,
        "version_table": "syncd_alembic_version",
        # Only the ledger's tables: later revisions add tables other modules define.
        "include_name": lambda name, kind, _parents: kind != "table" or name in names,
    }
    wanted = MetaData()
    for name in names:
        ledger.metadata.tables[name].to_metadata(wanted)
    return list(compare_metadata(MigrationContext.configure(conn, opts=opts), wanted))


def database_state(conn: Connection) -> tuple[Any, ...]:
    """Everything migrate could touch, to prove a second run changes nothing."""
    tables = sorted(inspect(conn).get_table_names())
    return (
        tables,
        q(conn, "SELECT * FROM b_hlblock_entity ORDER BY ID"),
        q(conn, "SELECT * FROM b_hlblock_entity_lang ORDER BY ID, LID"),
        q(conn, "SELECT * FROM b_user_field ORDER BY ID"),
        q(conn, "SELECT * FROM b_user_field_lang ORDER BY USER_FIELD_ID, LANGUAGE_ID"),
        [(t, columns(conn, t), indexes(conn, t)) for t in tables],
    )


# ---------------------------------------------------------------- a fresh site


def test_fresh_blocks_are_made_like_the_admin_makes_them(site: Engine) -> None:
    report = migrate(site, CFG)

    assert report.ok and report.changed
    assert [b.name for b in report.blocks] == ["ContractorBalance", "ContractorPayments", "ContractorDocuments"]
    for b, spec in zip(report.blocks, SPECS, strict=True):
        assert b.created and b.table_created
        assert b.fields_added == [f.name for f in spec.fields]
        assert b.titles_added == ["ru", "en"]
    with site.connect() as conn:
        entities = q(conn, "SELECT ID, NAME, TABLE_NAME FROM b_hlblock_entity ORDER BY ID")
        assert [(e["NAME"], e["TABLE_NAME"]) for e in entities] == [(s.name, s.table) for s in SPECS]
        for spec in SPECS:
            hid = hl_id(conn, spec.name)
            titles = q(conn, "SELECT LID, NAME FROM b_hlblock_entity_lang WHERE ID = :i ORDER BY LID", i=hid)
            assert titles == [{"LID": "en", "NAME": spec.title_en}, {"LID": "ru", "NAME": spec.title_ru}]

            fields = user_fields(conn, hid)
            assert list(fields) == [f.name for f in spec.fields]
            for n, f in enumerate(spec.fields, start=1):
                row = fields[f.name]
                assert row["USER_TYPE_ID"] == f.type
                assert row["XML_ID"] == f.name
                assert row["SORT"] == 100 * n
                assert (row["MULTIPLE"], row["MANDATORY"], row["IS_SEARCHABLE"]) == ("N", "N", "N")
                assert (row["SHOW_IN_LIST"], row["EDIT_IN_LIST"]) == ("Y", "Y")
                assert row["SHOW_FILTER"] == ("I" if f.index else "N")
                assert row["SETTINGS"] == ADMIN_SETTINGS[f.type]
                labels = q(
                    conn,
                    "SELECT LANGUAGE_ID, EDIT_FORM_LABEL, LIST_COLUMN_LABEL, LIST_FILTER_LABEL"
                    " FROM b_user_field_lang WHERE USER_FIELD_ID = :i ORDER BY LANGUAGE_ID",
                    i=row["ID"],
                )
                assert labels == [
                    {"LANGUAGE_ID": "en", "EDIT_FORM_LABEL": f.label_en, "LIST_COLUMN_LABEL": f.label_en,
                     "LIST_FILTER_LABEL": f.label_en},
                    {"LANGUAGE_ID": "ru", "EDIT_FORM_LABEL": f.label_ru, "LIST_COLUMN_LABEL": f.label_ru,
                     "LIST_FILTER_LABEL": f.label_ru},
                ]

            cols = columns(conn, spec.table)
            assert list(cols) == ["ID", *[f.name for f in spec.fields]]
            assert cols["ID"]["COLUMN_TYPE"] == "int(11) unsigned"
            assert cols["ID"]["EXTRA"] == "auto_increment" and cols["ID"]["COLUMN_KEY"] == "PRI"
            for f in spec.fields:
                assert cols[f.name]["DATA_TYPE"] == MYSQL_TYPES[f.type], f.name
                assert cols[f.name]["IS_NULLABLE"] == "YES"

            ix = indexes(conn, spec.table)
            by_column = {c[0][0]: (unique, c[0][1]) for unique, c in ix.values()}
            for f in spec.fields:
                if f.index is None:
                    assert f.name not in by_column
                    continue
                prefix = 36 if f.type == "string" else None
                assert by_column[f.name] == (f.index == "unique", prefix), f.name
    assert by_column  # the loop saw indexes


def test_key_fields_have_unique_indexes(site: Engine) -> None:
    migrate(site, CFG)
    with site.connect() as conn:
        keys = (("contractor_balance", "UF_CONTRACTOR_XML_ID"), ("contractor_payments", "UF_PAYMENT_XML_ID"))
        for table, key in keys:
            uniques = [cols for unique, cols in indexes(conn, table).values() if unique and cols[0][0] != "ID"]
            assert uniques == [[(key, 36)]]
        # One document shows up once per due date, so its id must not be unique.
        assert not [u for u, c in indexes(conn, "contractor_documents").values() if u and c[0][0] != "ID"]


def test_every_field_row_has_its_column_like_compile_entity_needs(site: Engine) -> None:
    migrate(site, CFG)
    with site.connect() as conn:
        for entity in q(conn, "SELECT ID, TABLE_NAME FROM b_hlblock_entity"):
            names = [r["FIELD_NAME"] for r in q(conn, "SELECT FIELD_NAME FROM b_user_field WHERE ENTITY_ID = :e",
                                                 e=f"HLBLOCK_{entity['ID']}")]
            assert names
            assert set(names) <= set(columns(conn, entity["TABLE_NAME"]))
            # What Bitrix's ORM runs for a list of the block: every field, by name.
            conn.execute(text(f"SELECT ID, {', '.join(names)} FROM {entity['TABLE_NAME']} LIMIT 1")).all()


def test_blocks_take_rows_through_the_writer_tables(site: Engine) -> None:
    migrate(site, CFG)
    with site.begin() as conn:
        tables = resolve_blocks(conn, CFG)
        hid, balance = tables["balance"]
        assert hid == hl_id(conn, "ContractorBalance")
        conn.execute(balance.insert().values(UF_CONTRACTOR_XML_ID="8f14e45f-ceea-11e9-88ba-00155d003f0a",
                                             UF_DEBT=1234.56, UF_NAME="ООО «Ромашка»"))
        row = conn.execute(select(balance)).one()
        assert (row.UF_DEBT, row.UF_NAME, row.UF_OVERDUE_DEBT) == (1234.56, "ООО «Ромашка»", None)


def test_old_core_without_lang_tables(engine: Engine) -> None:
    core.create_stand_in_core(engine, with_lang=False)
    report = migrate(engine, CFG)
    assert report.ok
    assert all(b.created and not b.titles_added for b in report.blocks)
    with engine.connect() as conn:
        assert not inspect(conn).has_table("b_hlblock_entity_lang")
        assert check_blocks(conn, CFG) == []
    assert not migrate(engine, CFG).changed


def test_custom_block_names(site: Engine) -> None:
    names = BlockNames(balance_block="Debts", balance_table="debts", payments_block="Pays",
                       payments_table="pays", documents_block="Docs", documents_table="docs")
    cfg = BitrixConfig(timezone=ZoneInfo("Europe/Moscow"), blocks=names)
    assert migrate(site, cfg).ok
    with site.connect() as conn:
        names_now = [r["NAME"] for r in q(conn, "SELECT NAME FROM b_hlblock_entity ORDER BY ID")]
        assert names_now == ["Debts", "Pays", "Docs"]
        assert check_blocks(conn, cfg) == []


# ---------------------------------------------------------------- idempotence


def test_second_run_changes_nothing(site: Engine) -> None:
    upgrade_own_tables(site)
    migrate(site, CFG)
    with site.connect() as conn:
        before = database_state(conn)
    report = migrate(site, CFG)
    assert report.ok and not report.changed
    assert not upgrade_own_tables(site).changed
    assert [line.split(": ")[-1] for line in report.lines()] == ["up to date"] * 3
    with site.connect() as conn:
        assert database_state(conn) == before


# ---------------------------------------------------------------- adoption


def _hand_made_balance(conn: Connection) -> int:
    """ContractorBalance as someone made it by hand: a few fields, UF_DEBT as string, extra field of theirs."""
    conn.exec_driver_sql(
        "INSERT INTO b_hlblock_entity (NAME, TABLE_NAME) VALUES ('ContractorBalance', 'contractor_balance')"
    )
    hid = hl_id(conn, "ContractorBalance")
    conn.exec_driver_sql(
        "CREATE TABLE contractor_balance (ID int(11) unsigned NOT NULL AUTO_INCREMENT, PRIMARY KEY (ID))"
    )
    for name, user_type, col, settings in (
        ("UF_CONTRACTOR_XML_ID", "string", "text", ADMIN_SETTINGS["string"]),
        ("UF_DEBT", "string", "text", ADMIN_SETTINGS["string"]),  # wrong type
        ("UF_OVERDUE_DEBT", "double", "double", ""),  # no settings: the admin rounds to whole units
        ("UF_COMMENT", "string", "text", ADMIN_SETTINGS["string"]),  # theirs, not syncd's
    ):
        conn.exec_driver_sql(f"ALTER TABLE contractor_balance ADD {name} {col}")
        conn.execute(
            text("INSERT INTO b_user_field (ENTITY_ID, FIELD_NAME, USER_TYPE_ID, XML_ID, SORT, SETTINGS)"
                 " VALUES (:e, :n, :t, :n, 500, :s)"),
            {"e": f"HLBLOCK_{hid}", "n": name, "t": user_type, "s": settings},
        )
    # A column without a field row, of a type syncd cannot use for money.
    conn.exec_driver_sql("ALTER TABLE contractor_balance ADD UF_CREDIT_LIMIT varchar(20)")
    conn.exec_driver_sql(
        "INSERT INTO contractor_balance (UF_CONTRACTOR_XML_ID, UF_DEBT, UF_COMMENT) VALUES ('a', '10', 'keep me')"
    )
    return hid


def test_adopts_a_hand_made_block(site: Engine) -> None:
    with site.begin() as conn:
        hid = _hand_made_balance(conn)
        before_rows = {k: v for k, v in user_fields(conn, hid).items()}

    report = migrate(site, CFG)

    balance = report.blocks[0]
    assert not balance.created and balance.hlblock_id == hid
    assert not report.ok
    assert len(balance.problems) == 2
    assert "UF_DEBT is of type 'string', syncd needs 'double'" in balance.problems[0]
    assert "contractor_balance.UF_CREDIT_LIMIT is varchar(20)" in balance.problems[1]
    assert any("UF_OVERDUE_DEBT has PRECISION unset" in w for w in balance.warnings)
    expected_new = [f.name for f in SPECS[0].fields
                    if f.name not in ("UF_CONTRACTOR_XML_ID", "UF_DEBT", "UF_OVERDUE_DEBT", "UF_CREDIT_LIMIT")]
    assert balance.fields_added == expected_new
    assert balance.labels_added == ["UF_CONTRACTOR_XML_ID (ru, en)", "UF_OVERDUE_DEBT (ru, en)"]
    assert balance.titles_added == ["ru", "en"]
    assert report.blocks[1].created and report.blocks[2].created  # the other two did not exist
    text_out = "\n".join(report.lines())
    assert "PROBLEM: field UF_DEBT" in text_out and "problem(s) left as they are" in text_out

    with site.connect() as conn:
        after = user_fields(conn, hid)
        for name, row in before_rows.items():
            assert after[name] == row  # existing rows untouched, theirs included
        assert "UF_CREDIT_LIMIT" not in after  # not registered over an unusable column
        cols = columns(conn, "contractor_balance")
        assert cols["UF_DEBT"]["DATA_TYPE"] == "text" and cols["UF_CREDIT_LIMIT"]["COLUMN_TYPE"] == "varchar(20)"
        assert "UF_COMMENT" in cols
        data = q(conn, "SELECT UF_DEBT, UF_COMMENT FROM contractor_balance")
        assert data == [{"UF_DEBT": "10", "UF_COMMENT": "keep me"}]
        assert [(True, [("UF_CONTRACTOR_XML_ID", 36)])] == [
            v for v in indexes(conn, "contractor_balance").values() if v[1][0][0] == "UF_CONTRACTOR_XML_ID"
        ]
        problems = check_blocks(conn, CFG)
        assert any("UF_DEBT" in p for p in problems) and any("UF_CREDIT_LIMIT" in p for p in problems)
        with pytest.raises(SchemaError, match="Run `syncd migrate`"):
            require_blocks(conn, CFG)

    # Problems stay problems, and nothing else happens the second time.
    again = migrate(site, CFG)
    assert not again.changed and again.blocks[0].problems == balance.problems


def test_adopts_an_unregistered_table(site: Engine) -> None:
    with site.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE contractor_payments (ID int(11) unsigned NOT NULL AUTO_INCREMENT,"
                             " UF_PAYMENT_XML_ID text, UF_SUM double, PRIMARY KEY (ID))")
        conn.exec_driver_sql("INSERT INTO contractor_payments (UF_PAYMENT_XML_ID, UF_SUM) VALUES ('p1', 5)")
    report = migrate(site, CFG)
    payments = report.blocks[1]
    assert report.ok and payments.created and not payments.table_created
    assert payments.fields_added == [f.name for f in SPECS[1].fields]
    assert payments.columns_added == [f.name for f in SPECS[1].fields if f.name not in ("UF_PAYMENT_XML_ID", "UF_SUM")]
    assert "registered the existing table" in payments.lines()[0]
    with site.connect() as conn:
        assert q(conn, "SELECT UF_PAYMENT_XML_ID, UF_SUM FROM contractor_payments") == [
            {"UF_PAYMENT_XML_ID": "p1", "UF_SUM": 5.0}
        ]
        assert check_blocks(conn, CFG) == []


def test_repairs_a_field_row_without_its_column(site: Engine) -> None:
    migrate(site, CFG)
    with site.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE contractor_documents DROP COLUMN UF_DUE_DATE")
        assert check_blocks(conn, CFG) == [
            "HL-block ContractorDocuments: column contractor_documents.UF_DUE_DATE is missing"
        ]
    report = migrate(site, CFG)
    assert report.ok and report.blocks[2].columns_added == ["UF_DUE_DATE"]
    assert report.blocks[2].fields_added == []
    assert "added columns for existing fields: UF_DUE_DATE" in "\n".join(report.lines())
    assert report.cache == []  # b_user_field did not change: no cache to clear
    with site.connect() as conn:
        assert check_blocks(conn, CFG) == []


def test_duplicate_keys_block_the_unique_index(site: Engine) -> None:
    with site.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE contractor_balance (ID int(11) unsigned NOT NULL AUTO_INCREMENT,"
                             " UF_CONTRACTOR_XML_ID text, PRIMARY KEY (ID))")
        conn.exec_driver_sql("INSERT INTO contractor_balance (UF_CONTRACTOR_XML_ID) VALUES ('dup'), ('dup'), ('x')")
    report = migrate(site, CFG)
    assert report.blocks[0].problems == [
        "cannot add the unique index on UF_CONTRACTOR_XML_ID: values occur more than once (e.g. dup)"
    ]
    with site.connect() as conn:
        problems = check_blocks(conn, CFG)
        assert "HL-block ContractorBalance: the unique index on UF_CONTRACTOR_XML_ID is missing" in problems


def test_names_taken_by_another_block_are_reported(site: Engine) -> None:
    with site.begin() as conn:
        for name, table in (("Other", "contractor_payments"), ("ContractorDocuments", "docs_1c")):
            sql = text("INSERT INTO b_hlblock_entity (NAME, TABLE_NAME) VALUES (:n, :t)")
            conn.execute(sql, {"n": name, "t": table})
    report = migrate(site, CFG)
    assert report.blocks[0].created and report.blocks[0].problems == []
    assert "belongs to another HL-block, Other" in report.blocks[1].problems[0]
    assert 'set bitrix.documents_table = "docs_1c"' in report.blocks[2].problems[0]
    with site.connect() as conn:
        assert not inspect(conn).has_table("contractor_payments")
        assert not inspect(conn).has_table("docs_1c")


# ---------------------------------------------------------------- no core, caches, own tables


def test_no_core_tables_is_a_clear_error(engine: Engine) -> None:
    expected = r"no Bitrix core tables \(b_hlblock_entity, b_user_field …\): is database.url"
    with pytest.raises(SchemaError, match=expected):
        migrate(engine, CFG)
    with engine.connect() as conn:
        assert check_blocks(conn, CFG) == [core.NO_CORE_MESSAGE]
        assert inspect(conn).get_table_names() == []


def test_field_cache_is_deleted_under_document_root(site: Engine, tmp_path: Path) -> None:
    cache = tmp_path / "bitrix/managed_cache/MYSQL"
    (cache / "b_user_field/1a2").mkdir(parents=True)
    (cache / "b_user_field/1a2/x.php").write_text("<?php")
    (cache / "b_option").mkdir()
    cfg = BitrixConfig(timezone=ZoneInfo("Europe/Moscow"), document_root=tmp_path)
    report = migrate(site, cfg)
    assert not (cache / "b_user_field").exists()
    assert (cache / "b_option").is_dir()  # only the field cache goes
    assert report.cache == [f"Bitrix field cache: deleted {cache / 'b_user_field'} (Bitrix rebuilds it)"]
    assert report.cache[0] in report.lines()
    # Nothing changed the second time, so the cache Bitrix rebuilt meanwhile stays.
    (cache / "b_user_field").mkdir()
    assert migrate(site, cfg).cache == []
    assert (cache / "b_user_field").is_dir()


def test_without_document_root_the_report_says_how_to_clear_the_cache(site: Engine, tmp_path: Path) -> None:
    report = migrate(site, CFG)
    assert "CACHED_b_user_field" in report.cache[0] and "bitrix/managed_cache/MYSQL/b_user_field" in report.cache[0]
    cfg = BitrixConfig(timezone=ZoneInfo("Europe/Moscow"), document_root=tmp_path / "not-bitrix")
    with site.begin() as conn:
        conn.exec_driver_sql("DELETE FROM b_user_field_lang")
    assert migrate(site, cfg).cache[0].startswith("warning: bitrix.document_root")


def test_own_tables_are_created_by_alembic_and_match_the_ledger(site: Engine) -> None:
    with site.connect() as conn:
        before = set(inspect(conn).get_table_names())
    head = head_revision()
    report = upgrade_own_tables(site)
    assert (report.before, report.after, report.line()) == (None, head, f"syncd tables: created (revision {head})")
    with site.connect() as conn:
        created = set(inspect(conn).get_table_names()) - before
        assert {"syncd_imports", "syncd_runs", "syncd_alembic_version"} <= created
        assert all(name.startswith("syncd_") for name in created), created
        assert not inspect(conn).has_table("alembic_version")
        assert q(conn, "SELECT version_num FROM syncd_alembic_version") == [{"version_num": head}]
        assert ledger_diffs(conn) == []
    assert upgrade_own_tables(site).line() == f"syncd tables: up to date (revision {head})"


def test_revision_0001_makes_exactly_the_ledger_tables(site: Engine) -> None:
    with site.begin() as conn:
        before = set(inspect(conn).get_table_names())
        command.upgrade(alembic_config(conn), "0001")
    with site.connect() as conn:
        assert set(inspect(conn).get_table_names()) - before == {"syncd_imports", "syncd_runs", "syncd_alembic_version"}
        assert ledger_diffs(conn, ["syncd_imports", "syncd_runs"]) == []
    assert upgrade_own_tables(site).before == "0001"  # later revisions apply on top


# ---------------------------------------------------------------- SQLite (make demo)


def test_sqlite_demo_database(tmp_path: Path) -> None:
    eng = make_engine(DatabaseConfig(f"sqlite:///{tmp_path / 'demo.db'}"))
    try:
        core.create_stand_in_core(eng)
        own = upgrade_own_tables(eng)
        assert own.after == head_revision()
        report = migrate(eng, CFG)
        assert report.ok and all(b.created for b in report.blocks)
        with eng.begin() as conn:
            assert check_blocks(conn, CFG) == []
            for spec in SPECS:
                fields = user_fields(conn, hl_id(conn, spec.name))
                assert [r["SETTINGS"] for r in fields.values()] == [ADMIN_SETTINGS[f.type] for f in spec.fields]
                assert set(fields) <= {c["name"] for c in inspect(conn).get_columns(spec.table)}
            ix = {i["name"]: i for i in inspect(conn).get_indexes("contractor_payments")}
            assert ix["ux_contractor_payments_uf_payment_xml_id"]["unique"]
            _, payments = resolve_blocks(conn, CFG)["payments"]
            conn.execute(payments.insert().values(UF_PAYMENT_XML_ID="p", UF_SUM=1.5))
            uid = core.add_user(conn, login="buyer", email="b@example.com",
                                fields={"UF_1C_CONTRACTOR_ID": "8f14e45f-ceea-11e9-88ba-00155d003f0a"})
            assert q(conn, "SELECT UF_1C_CONTRACTOR_ID FROM b_uts_user WHERE VALUE_ID = :i", i=uid) == [
                {"UF_1C_CONTRACTOR_ID": "8f14e45f-ceea-11e9-88ba-00155d003f0a"}
            ]
        assert not migrate(eng, CFG).changed
        with eng.connect() as conn:
            assert ledger_diffs(conn) == []
    finally:
        eng.dispose()


# ---------------------------------------------------------------- stand-in core, users


def test_stand_in_core_is_bitrix_shaped(site: Engine) -> None:
    with site.begin() as conn:
        assert columns(conn, "b_hlblock_entity")["ID"]["COLUMN_TYPE"] == "int(11) unsigned"
        assert columns(conn, "b_uts_user")["UF_1C_CONTRACTOR_ID"]["DATA_TYPE"] == "text"
        field = q(conn, "SELECT USER_TYPE_ID, SETTINGS FROM b_user_field WHERE ENTITY_ID = 'USER'")
        assert field == [{"USER_TYPE_ID": "string", "SETTINGS": ADMIN_SETTINGS["string"]}]
        uid = core.add_user(conn, login="ivan", email="i@example.com", xml_id="x1", active=False,
                            fields={"UF_1C_CONTRACTOR_ID": "g1"})
        core.add_user(conn, login="petr")
        rows = q(conn, "SELECT u.LOGIN, u.ACTIVE, u.XML_ID, uts.UF_1C_CONTRACTOR_ID FROM b_user u"
                       " LEFT JOIN b_uts_user uts ON uts.VALUE_ID = u.ID ORDER BY u.ID")
        assert rows == [
            {"LOGIN": "ivan", "ACTIVE": "N", "XML_ID": "x1", "UF_1C_CONTRACTOR_ID": "g1"},
            {"LOGIN": "petr", "ACTIVE": "Y", "XML_ID": None, "UF_1C_CONTRACTOR_ID": None},
        ]
        assert uid == q(conn, "SELECT ID FROM b_user WHERE LOGIN = 'ivan'")[0]["ID"]
    core.create_stand_in_core(site, user_fields=("UF_1C_CONTRACTOR_ID", "UF_INN"))  # again: adds only UF_INN
    with site.connect() as conn:
        assert [r["FIELD_NAME"] for r in q(conn, "SELECT FIELD_NAME FROM b_user_field ORDER BY ID")] == [
            "UF_1C_CONTRACTOR_ID", "UF_INN"
        ]


# ---------------------------------------------------------------- the command


def _config(tmp_path: Path, db_url: str, document_root: Path | None = None) -> Path:
    exports = tmp_path / "exports"
    exports.mkdir(exist_ok=True)
    bitrix = f'document_root = "{document_root}"\n' if document_root else ""
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[source]\ntype = "local"\npath = "{exports}"\n\n[database]\nurl = "{db_url}"\n\n[bitrix]\n{bitrix}',
        encoding="utf-8",
    )
    return path


def test_cli_migrate(site: Engine, db_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, db_url)
    first = CliRunner().invoke(cli, ["migrate", "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert first.output.startswith(f"syncd tables: created (revision {head_revision()})\n")
    assert "HL-block ContractorBalance (ID 1, table contractor_balance): created with 13 fields" in first.output
    assert "CACHED_b_user_field" in first.output

    second = CliRunner().invoke(cli, ["migrate"], env={"SYNCD_CONFIG": str(config)})
    assert second.exit_code == 0, second.output
    assert second.output.endswith("up to date\nnothing to do\n")


def test_cli_migrate_reports_problems_with_exit_7(site: Engine, db_url: str, tmp_path: Path) -> None:
    with site.begin() as conn:
        _hand_made_balance(conn)
    result = CliRunner().invoke(cli, ["migrate", "-c", str(_config(tmp_path, db_url))])
    assert result.exit_code == 7
    assert "PROBLEM: field UF_DEBT is of type 'string', syncd needs 'double': left as is" in result.output
    assert "Traceback" not in result.output


def test_cli_migrate_without_core_or_config(engine: Engine, db_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["migrate", "-c", str(_config(tmp_path, db_url))])
    assert result.exit_code == 7
    assert "syncd: error: this database has no Bitrix core tables" in result.output
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == []  # not even syncd's own tables

    missing = CliRunner().invoke(cli, ["migrate", "-c", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 3 and "cannot read config" in missing.output and "Traceback" not in missing.output
