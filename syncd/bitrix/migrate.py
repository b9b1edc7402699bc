"""Make syncd's three HL-blocks real Bitrix HL-blocks, the way the Bitrix admin would.

A block is a b_hlblock_entity row, its titles, one b_user_field row (plus labels) per field and
a data table with one column per field. Blocks that already exist are adopted: what is missing is
added, nothing is dropped or altered, and anything that does not fit (a field of another type, a
column of an incompatible type) is reported and left for a human to decide.

Order matters because MySQL commits every DDL statement on its own: columns are added before the
b_user_field rows that describe them. A column Bitrix does not know about is ignored by the site,
while a field row without its column breaks every query on the block.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, Index, Integer, MetaData, Table, func, insert, inspect, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import sqltypes
from sqlalchemy.types import TypeEngine

from syncd.bitrix import core
from syncd.bitrix.owntables import OwnTablesReport, upgrade_own_tables
from syncd.bitrix.phpserialize import PhpSerializeError, PhpValue, serialize, unserialize
from syncd.bitrix.schema import BlockSpec, FieldSpec, Role, block_specs, column_type, data_table
from syncd.config import BitrixConfig
from syncd.contract.fields import UserType
from syncd.errors import SchemaError

__all__ = [
    "BlockReport", "MigrateReport", "OwnTablesReport", "check_blocks", "field_settings", "migrate",
    "require_blocks", "resolve_blocks", "upgrade_own_tables",
]

LANGS = ("ru", "en")
MONEY_PRECISION = 2
GUID_PREFIX = 36  # text columns can only be indexed on a prefix; every indexed text field holds a GUID

_EMPTY_DATE: dict[str, PhpValue] = {"TYPE": "NONE", "VALUE": ""}
# SETTINGS exactly as the admin form saves them for a new field of each type.
FIELD_SETTINGS: dict[str, dict[str, PhpValue]] = {
    "string": {"SIZE": 20, "ROWS": 1, "REGEXP": "", "MIN_LENGTH": 0, "MAX_LENGTH": 0, "DEFAULT_VALUE": ""},
    "integer": {"SIZE": 20, "MIN_VALUE": 0, "MAX_VALUE": 0, "DEFAULT_VALUE": None},
    "double": {"PRECISION": MONEY_PRECISION, "SIZE": 20, "MIN_VALUE": 0.0, "MAX_VALUE": 0.0, "DEFAULT_VALUE": None},
    "date": {"DEFAULT_VALUE": _EMPTY_DATE},
    "datetime": {"DEFAULT_VALUE": _EMPTY_DATE, "USE_SECOND": "Y", "USE_TIMEZONE": "N"},
    "boolean": {"DEFAULT_VALUE": 0, "DISPLAY": "CHECKBOX", "LABEL": ["", ""], "LABEL_CHECKBOX": ""},
}

# What Bitrix puts in the data table for each type (MySQL), for messages.
BITRIX_COLUMN = {"string": "text", "integer": "int", "double": "double", "date": "date", "datetime": "datetime"}

FIELD_CACHE = Path("bitrix/managed_cache/MYSQL/b_user_field")


def field_settings(user_type: str) -> str:
    """The serialized SETTINGS of a new field of USER_TYPE_ID."""
    return serialize(FIELD_SETTINGS[user_type])


# ---------------------------------------------------------------- reports


@dataclass
class BlockReport:
    role: Role
    name: str
    table: str
    hlblock_id: int | None = None
    created: bool = False  # the b_hlblock_entity row was inserted now
    table_created: bool = False
    fields_added: list[str] = field(default_factory=list)
    columns_added: list[str] = field(default_factory=list)
    labels_added: list[str] = field(default_factory=list)
    titles_added: list[str] = field(default_factory=list)
    indexes_added: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.created or self.table_created or self.fields_added or self.columns_added
            or self.labels_added or self.titles_added or self.indexes_added
        )

    @property
    def fields_changed(self) -> bool:
        """Whether b_user_field or its labels changed, i.e. Bitrix's field cache is stale."""
        return bool(self.fields_added or self.labels_added)

    def lines(self) -> list[str]:
        ident = f"ID {self.hlblock_id}, " if self.hlblock_id is not None else ""
        head = f"HL-block {self.name} ({ident}table {self.table})"
        if self.created:
            what = "registered the existing table" if not self.table_created else "created"
            head += f": {what} with {len(self.fields_added)} fields"
        elif self.changed:
            head += ": adopted, completed"
        elif self.problems:
            head += ": left as is"
        else:
            head += ": up to date"
        out = [head]
        if not self.created:
            if self.table_created:
                out.append("  created the missing data table")
            if self.fields_added:
                out.append("  added fields: " + ", ".join(self.fields_added))
        extra_columns = [c for c in self.columns_added if c not in self.fields_added]
        if extra_columns and not self.table_created:
            out.append("  added columns for existing fields: " + ", ".join(extra_columns))
        if self.titles_added and not self.created:
            out.append("  added titles: " + ", ".join(self.titles_added))
        if self.labels_added:
            out.append("  added labels: " + ", ".join(self.labels_added))
        if self.indexes_added:
            out.append("  added indexes: " + ", ".join(self.indexes_added))
        out += [f"  PROBLEM: {p}" for p in self.problems]
        out += [f"  warning: {w}" for w in self.warnings]
        return out


@dataclass
class MigrateReport:
    blocks: list[BlockReport] = field(default_factory=list)
    cache: list[str] = field(default_factory=list)  # what happened to Bitrix's field cache

    @property
    def changed(self) -> bool:
        return any(b.changed for b in self.blocks)

    @property
    def problems(self) -> list[str]:
        return [f"{b.name}: {p}" for b in self.blocks for p in b.problems]

    @property
    def warnings(self) -> list[str]:
        return [f"{b.name}: {w}" for b in self.blocks for w in b.warnings] + [
            line for line in self.cache if line.startswith("warning:")
        ]

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [line for b in self.blocks for line in b.lines()]
        out += self.cache
        if self.problems:
            out.append(
                f"{len(self.problems)} problem(s) left as they are: fix them in the Bitrix admin "
                "(or rename the blocks in [bitrix]) and run `syncd migrate` again"
            )
        return out


# ---------------------------------------------------------------- what is there


@dataclass
class _FieldRow:
    id: int
    user_type: str
    multiple: str
    settings: str | None


@dataclass
class _State:
    hl_id: int | None = None
    hl_table: str | None = None  # TABLE_NAME of the row named like the block
    table_owner: tuple[int, str] | None = None  # another block registered on our table
    table_exists: bool = False
    columns: dict[str, TypeEngine[Any]] = field(default_factory=dict)  # upper-case name -> type
    fields: dict[str, _FieldRow] = field(default_factory=dict)
    labelled: set[tuple[int, str]] = field(default_factory=set)
    titles: set[str] = field(default_factory=set)
    indexes: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)  # (columns, unique)
    has_entity_lang: bool = False
    has_field_lang: bool = False


def _inspect(conn: Connection, spec: BlockSpec) -> _State:
    insp = inspect(conn)
    st = _State(has_entity_lang=insp.has_table("b_hlblock_entity_lang"),
                has_field_lang=insp.has_table("b_user_field_lang"))
    he = core.hlblock_entity
    row = conn.execute(select(he.c.ID, he.c.TABLE_NAME).where(he.c.NAME == spec.name)).first()
    if row is not None:
        st.hl_id, st.hl_table = int(row.ID), str(row.TABLE_NAME)
    other = conn.execute(
        select(he.c.ID, he.c.NAME).where(func.lower(he.c.TABLE_NAME) == spec.table.lower(), he.c.NAME != spec.name)
    ).first()
    if other is not None:
        st.table_owner = (int(other.ID), str(other.NAME))
    st.table_exists = insp.has_table(spec.table)
    if st.table_exists:
        st.columns = {c["name"].upper(): c["type"] for c in insp.get_columns(spec.table)}
        for ix in insp.get_indexes(spec.table):
            st.indexes.append((tuple(str(c).upper() for c in ix["column_names"]), bool(ix["unique"])))
        for uc in insp.get_unique_constraints(spec.table):
            st.indexes.append((tuple(str(c).upper() for c in uc["column_names"]), True))
    if st.hl_id is not None:
        uf = core.user_field
        rows = conn.execute(
            select(uf.c.ID, uf.c.FIELD_NAME, uf.c.USER_TYPE_ID, uf.c.MULTIPLE, uf.c.SETTINGS)
            .where(uf.c.ENTITY_ID == f"HLBLOCK_{st.hl_id}")
        )
        for r in rows:
            st.fields[str(r.FIELD_NAME).upper()] = _FieldRow(
                int(r.ID), str(r.USER_TYPE_ID), str(r.MULTIPLE), r.SETTINGS
            )
        if st.fields and st.has_field_lang:
            ufl = core.user_field_lang
            ids = [f.id for f in st.fields.values()]
            st.labelled = {
                (int(r.USER_FIELD_ID), str(r.LANGUAGE_ID))
                for r in conn.execute(
                    select(ufl.c.USER_FIELD_ID, ufl.c.LANGUAGE_ID).where(ufl.c.USER_FIELD_ID.in_(ids))
                )
            }
        if st.has_entity_lang:
            hel = core.hlblock_entity_lang
            st.titles = {str(r.LID) for r in conn.execute(select(hel.c.LID).where(hel.c.ID == st.hl_id))}
    return st


def _compatible(t: TypeEngine[Any], user_type: UserType) -> bool:
    """Whether syncd can store values of USER_TYPE_ID in a column of type T without loss."""
    if user_type == "string":
        return isinstance(t, sqltypes.String)
    if user_type == "integer":
        return isinstance(t, sqltypes.Integer)
    if user_type == "double":
        # float (single precision) keeps ~7 digits: not enough for money.
        if isinstance(t, sqltypes.Double | sqltypes.REAL):
            return True
        return isinstance(t, sqltypes.Numeric) and not isinstance(t, sqltypes.Float) and (t.scale or 0) >= 2
    if user_type == "date":
        return isinstance(t, sqltypes.Date | sqltypes.DateTime)
    return isinstance(t, sqltypes.DateTime)


def _type_name(conn: Connection, t: TypeEngine[Any]) -> str:
    try:
        return t.compile(dialect=conn.dialect).lower()
    except Exception:  # a reflected type the dialect cannot render back; its class name is enough here
        return type(t).__name__.lower()


def _block_problems(st: _State, spec: BlockSpec) -> list[str]:
    """Problems that make the block unusable as a whole (nothing is done to it)."""
    if st.hl_table is not None and st.hl_table.lower() != spec.table.lower():
        return [
            f"the HL-block exists with table {st.hl_table}, but the configuration says {spec.table}: "
            f'set bitrix.{spec.role}_table = "{st.hl_table}"'
        ]
    if st.table_owner is not None:
        oid, oname = st.table_owner
        return [f"table {spec.table} belongs to another HL-block, {oname} (ID {oid}): choose other names in [bitrix]"]
    if st.table_exists and "ID" not in st.columns:
        return [f"table {spec.table} exists but has no ID column: it is not an HL-block table"]
    return []


def _field_problems(conn: Connection, st: _State, spec: BlockSpec, f: FieldSpec) -> list[str]:
    # One message per field: a field of the wrong type usually has a column of that wrong type too.
    row = st.fields.get(f.name)
    if row is not None and row.user_type != f.type:
        return [f"field {f.name} is of type {row.user_type!r}, syncd needs {f.type!r}: left as is"]
    if row is not None and row.multiple == "Y":
        return [f"field {f.name} is multiple, syncd needs a single value: left as is"]
    col = st.columns.get(f.name)
    if col is not None and not _compatible(col, f.type):
        return [
            f"column {spec.table}.{f.name} is {_type_name(conn, col)}, a {f.type} field needs "
            f"{BITRIX_COLUMN[f.type]}: left as is"
        ]
    return []


def _settings_warning(row: _FieldRow, f: FieldSpec) -> str | None:
    if f.type != "double" or row.user_type != "double":
        return None
    try:
        settings = unserialize(row.settings or "")
    except PhpSerializeError:
        settings = None
    precision = settings.get("PRECISION") if isinstance(settings, dict) else None
    if not isinstance(precision, int) or isinstance(precision, bool) or precision < MONEY_PRECISION:
        return (
            f"field {f.name} has PRECISION {precision if precision is not None else 'unset (0)'}: "
            f"the admin shows it rounded; set the precision to {MONEY_PRECISION} in the field's settings"
        )
    return None


def _covered(st: _State, name: str, unique: bool) -> bool:
    for cols, is_unique in st.indexes:
        if unique and is_unique and cols == (name,):
            return True
        if not unique and cols and cols[0] == name:
            return True
    return False


def _index_name(table: str, f: FieldSpec, unique: bool) -> str:
    # SQLite index names are database-wide, so the table is part of the name; MySQL allows 64 characters.
    name = f"{'ux' if unique else 'ix'}_{table}_{f.name}".lower()
    if len(name) > 64:
        name = name[:55] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


# ---------------------------------------------------------------- checking (for the writer)


def check_blocks(conn: Connection, bitrix_cfg: BitrixConfig) -> list[str]:
    """What keeps syncd from writing the three blocks: missing core, blocks, fields, columns, key indexes."""
    if not core.core_present(conn):
        return [core.NO_CORE_MESSAGE]
    problems: list[str] = []
    for spec in block_specs(bitrix_cfg.blocks):
        st = _inspect(conn, spec)
        where = f"HL-block {spec.name}"
        block = _block_problems(st, spec)
        if block:
            problems += [f"{where}: {p}" for p in block]
            continue
        if st.hl_id is None:
            problems.append(f"{where} does not exist")
            continue
        if not st.table_exists:
            problems.append(f"{where}: its table {spec.table} does not exist")
            continue
        for f in spec.fields:
            problems += [f"{where}: {p}" for p in _field_problems(conn, st, spec, f)]
            if f.name not in st.fields:
                problems.append(f"{where}: field {f.name} is missing")
            if f.name not in st.columns:
                problems.append(f"{where}: column {spec.table}.{f.name} is missing")
            if f.index == "unique" and f.name in st.columns and not _covered(st, f.name, unique=True):
                problems.append(f"{where}: the unique index on {f.name} is missing")
    return problems


def require_blocks(conn: Connection, bitrix_cfg: BitrixConfig) -> None:
    """Raise SchemaError listing what check_blocks found, telling the user to run `syncd migrate`."""
    problems = check_blocks(conn, bitrix_cfg)
    if problems:
        if problems == [core.NO_CORE_MESSAGE]:
            raise SchemaError(core.NO_CORE_MESSAGE)
        raise SchemaError("the HL-blocks are not ready: " + "; ".join(problems) + ". Run `syncd migrate`.")


def resolve_blocks(conn: Connection, bitrix_cfg: BitrixConfig) -> dict[Role, tuple[int, Table]]:
    """The HL-block ID and the data Table of each role; SchemaError if a block is not ready."""
    require_blocks(conn, bitrix_cfg)
    he = core.hlblock_entity
    md = MetaData()
    out: dict[Role, tuple[int, Table]] = {}
    for spec in block_specs(bitrix_cfg.blocks):
        hl_id = conn.execute(select(he.c.ID).where(he.c.NAME == spec.name)).scalar_one()
        out[spec.role] = (int(hl_id), data_table(spec, md))
    return out


# ---------------------------------------------------------------- migrating


def _create_data_table(conn: Connection, table: str) -> None:
    if conn.dialect.name in ("mysql", "mariadb"):
        quoted = conn.dialect.identifier_preparer.quote(table)
        conn.exec_driver_sql(
            f"CREATE TABLE {quoted} (ID int(11) unsigned NOT NULL AUTO_INCREMENT, PRIMARY KEY (ID))"
        )
    else:
        Table(table, MetaData(), Column("ID", Integer, primary_key=True, autoincrement=True)).create(conn)


def _add_column(conn: Connection, table: str, f: FieldSpec) -> None:
    prep = conn.dialect.identifier_preparer
    type_sql = column_type(f.type).compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE {prep.quote(table)} ADD {prep.quote(f.name)} {type_sql}")


def _duplicates(conn: Connection, table: Table, name: str) -> list[str]:
    col = table.c[name]
    rows = conn.execute(
        select(col).where(col.is_not(None)).group_by(col).having(func.count() > 1).limit(3)
    ).scalars()
    return [str(v) for v in rows]


def _add_index(conn: Connection, st: _State, spec: BlockSpec, f: FieldSpec, report: BlockReport) -> None:
    unique = f.index == "unique"
    col_type = st.columns[f.name]
    name = _index_name(spec.table, f, unique)
    table = Table(spec.table, MetaData(), Column(f.name, col_type))
    if unique:
        dups = _duplicates(conn, table, f.name)
        if dups:
            report.problems.append(
                f"cannot add the unique index on {f.name}: values occur more than once (e.g. {', '.join(dups)})"
            )
            return
    kw: dict[str, Any] = {}
    if isinstance(col_type, sqltypes.Text):
        kw["mysql_length"] = {f.name: GUID_PREFIX}
    index = Index(name, table.c[f.name], unique=unique, **kw)
    try:
        index.create(conn)
    except DBAPIError as exc:
        report.problems.append(f"cannot add index {name} on {f.name}: {exc.orig}")
        return
    st.indexes.append(((f.name,), unique))
    report.indexes_added.append(f"{name} ({'unique ' if unique else ''}{f.name})")


def _insert_labels(conn: Connection, field_id: int, f: FieldSpec, langs: list[str]) -> None:
    for lang in langs:
        label = f.label_ru if lang == "ru" else f.label_en
        conn.execute(
            insert(core.user_field_lang).values(
                USER_FIELD_ID=field_id, LANGUAGE_ID=lang, EDIT_FORM_LABEL=label, LIST_COLUMN_LABEL=label,
                LIST_FILTER_LABEL=label, ERROR_MESSAGE="", HELP_MESSAGE="",
            )
        )


def _migrate_block(engine: Engine, spec: BlockSpec) -> BlockReport:
    report = BlockReport(spec.role, spec.name, spec.table)
    with engine.begin() as conn:
        st = _inspect(conn, spec)
        report.hlblock_id = st.hl_id
        report.problems += _block_problems(st, spec)
        if report.problems:
            return report
        usable = _migrate_columns(conn, st, spec, report)
        # The rows Bitrix reads, in one transaction after the last DDL statement.
        if st.hl_id is None:
            result = conn.execute(insert(core.hlblock_entity).values(NAME=spec.name, TABLE_NAME=spec.table))
            key = result.inserted_primary_key
            assert key is not None
            st.hl_id = report.hlblock_id = int(key[0])
            report.created = True
        if st.has_entity_lang:
            for lang in LANGS:
                if lang not in st.titles:
                    title = spec.title_ru if lang == "ru" else spec.title_en
                    conn.execute(insert(core.hlblock_entity_lang).values(ID=st.hl_id, LID=lang, NAME=title))
                    report.titles_added.append(lang)
        for f in usable:
            _migrate_field_row(conn, st, spec, f, report)
    return report


def _migrate_columns(conn: Connection, st: _State, spec: BlockSpec, report: BlockReport) -> list[FieldSpec]:
    """DDL: the table, its columns, our indexes. Returns the fields whose row and column are (or will be) right."""
    if not st.table_exists:
        _create_data_table(conn, spec.table)
        st.table_exists, st.columns = True, {"ID": Integer()}
        report.table_created = True
    usable: list[FieldSpec] = []
    for f in spec.fields:
        problems = _field_problems(conn, st, spec, f)
        if problems:
            report.problems += problems
            continue
        if f.name not in st.columns:
            _add_column(conn, spec.table, f)
            st.columns[f.name] = column_type(f.type)
            report.columns_added.append(f.name)
        usable.append(f)
        if f.index is not None and not _covered(st, f.name, unique=f.index == "unique"):
            _add_index(conn, st, spec, f, report)
    return usable


def _migrate_field_row(conn: Connection, st: _State, spec: BlockSpec, f: FieldSpec, report: BlockReport) -> None:
    """The field's b_user_field row and its labels: added when missing, checked when there."""
    assert st.hl_id is not None
    row = st.fields.get(f.name)
    if row is None:
        result = conn.execute(
            insert(core.user_field).values(
                ENTITY_ID=f"HLBLOCK_{st.hl_id}", FIELD_NAME=f.name, USER_TYPE_ID=f.type, XML_ID=f.name,
                SORT=100 * (spec.fields.index(f) + 1), MULTIPLE="N", MANDATORY="N",
                # 'I' = exact-match filter in the admin list: what one filters GUIDs and user ids by.
                SHOW_FILTER="I" if f.index else "N", SHOW_IN_LIST="Y", EDIT_IN_LIST="Y",
                IS_SEARCHABLE="N", SETTINGS=field_settings(f.type),
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        if st.has_field_lang:
            _insert_labels(conn, int(key[0]), f, list(LANGS))
        report.fields_added.append(f.name)
        return
    warning = _settings_warning(row, f)
    if warning:
        report.warnings.append(warning)
    missing = [lang for lang in LANGS if (row.id, lang) not in st.labelled]
    if missing and st.has_field_lang:
        _insert_labels(conn, row.id, f, missing)
        report.labels_added.append(f"{f.name} ({', '.join(missing)})")


def _clear_field_cache(document_root: Path | None) -> list[str]:
    if document_root is None:
        return [
            "Bitrix caches field lists for up to an hour (CACHED_b_user_field): the site shows the new fields "
            f"after that, or at once if you delete <document root>/{FIELD_CACHE}/ (safe: Bitrix rebuilds it). "
            "Set bitrix.document_root to have syncd do it."
        ]
    path = document_root / FIELD_CACHE
    if not (document_root / "bitrix").is_dir():
        return [
            f"warning: bitrix.document_root = {document_root} has no bitrix/ folder, so the field cache was "
            f"not cleared: delete <document root>/{FIELD_CACHE}/ or wait up to an hour"
        ]
    if not path.exists():
        return [f"Bitrix field cache: {path} does not exist, nothing to clear"]
    try:
        shutil.rmtree(path)
    except OSError as exc:
        return [f"warning: could not delete the Bitrix field cache {path} ({exc.strerror or exc}): "
                "delete it by hand or wait up to an hour"]
    return [f"Bitrix field cache: deleted {path} (Bitrix rebuilds it)"]


def migrate(engine: Engine, bitrix_cfg: BitrixConfig) -> MigrateReport:
    """Create or complete the three HL-blocks; never drops or alters what is there.

    Raises SchemaError when the database has no Bitrix core. Problems with existing blocks are in
    the report (`report.ok` is False) and were left untouched.
    """
    with engine.connect() as conn:
        core.require_core(conn)
    report = MigrateReport([_migrate_block(engine, spec) for spec in block_specs(bitrix_cfg.blocks)])
    if any(b.fields_changed for b in report.blocks):
        report.cache = _clear_field_cache(bitrix_cfg.document_root)
    return report
