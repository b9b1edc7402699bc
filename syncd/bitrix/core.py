"""The Bitrix core tables syncd reads or writes, as SQLAlchemy Core sees them.

Only the columns syncd touches are declared: a real b_user has dozens more, and SQLAlchemy never
needs to know about them. `create_stand_in_core` builds a minimal core for the demo and tests;
on MySQL it runs the DDL Bitrix's own installer runs, so tests see the same column types
(int(11) unsigned, char(1) defaults, no engine clause) a production database has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import (
    CHAR,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    column,
    insert,
    inspect,
    select,
    table,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

from syncd.errors import SchemaError

metadata = MetaData()

# Bitrix declares HL-block ids unsigned; other core ids are plain int.
_UINT: TypeEngine[int] = Integer().with_variant(mysql.INTEGER(display_width=11, unsigned=True), "mysql", "mariadb")

hlblock_entity = Table(
    "b_hlblock_entity",
    metadata,
    Column("ID", _UINT, primary_key=True, autoincrement=True),
    Column("NAME", String(100), nullable=False, unique=True),
    Column("TABLE_NAME", String(64), nullable=False, unique=True),
)

# No primary key in Bitrix's SQL; SQLAlchemy needs one to map rows, and (ID, LID) is what it is in practice.
hlblock_entity_lang = Table(
    "b_hlblock_entity_lang",
    metadata,
    Column("ID", _UINT, nullable=False),
    Column("LID", CHAR(2), nullable=False),
    Column("NAME", String(100), nullable=False),
    PrimaryKeyConstraint("ID", "LID"),
)

hlblock_entity_rights = Table(
    "b_hlblock_entity_rights",
    metadata,
    Column("ID", _UINT, primary_key=True, autoincrement=True),
    Column("HL_ID", _UINT, nullable=False),
    Column("TASK_ID", _UINT, nullable=False),
    Column("ACCESS_CODE", String(50), nullable=False),
)

user_field = Table(
    "b_user_field",
    metadata,
    Column("ID", Integer, primary_key=True, autoincrement=True),
    Column("ENTITY_ID", String(50)),
    Column("FIELD_NAME", String(50)),
    Column("USER_TYPE_ID", String(50)),
    Column("XML_ID", String(255)),
    Column("SORT", Integer),
    Column("MULTIPLE", CHAR(1), nullable=False, server_default="N"),
    Column("MANDATORY", CHAR(1), nullable=False, server_default="N"),
    Column("SHOW_FILTER", CHAR(1), nullable=False, server_default="N"),
    Column("SHOW_IN_LIST", CHAR(1), nullable=False, server_default="Y"),
    Column("EDIT_IN_LIST", CHAR(1), nullable=False, server_default="Y"),
    Column("IS_SEARCHABLE", CHAR(1), nullable=False, server_default="N"),
    Column("SETTINGS", Text),
    UniqueConstraint("ENTITY_ID", "FIELD_NAME", name="ux_user_type_entity"),
)

user_field_lang = Table(
    "b_user_field_lang",
    metadata,
    Column("USER_FIELD_ID", Integer, nullable=False),
    Column("LANGUAGE_ID", CHAR(2), nullable=False),
    Column("EDIT_FORM_LABEL", String(255)),
    Column("LIST_COLUMN_LABEL", String(255)),
    Column("LIST_FILTER_LABEL", String(255)),
    Column("ERROR_MESSAGE", String(255)),
    Column("HELP_MESSAGE", String(255)),
    PrimaryKeyConstraint("USER_FIELD_ID", "LANGUAGE_ID"),
)

user = Table(
    "b_user",
    metadata,
    Column("ID", Integer, primary_key=True, autoincrement=True),
    Column("TIMESTAMP_X", DateTime, nullable=True),
    Column("LOGIN", String(50), nullable=False),
    Column("PASSWORD", String(255), nullable=False),
    Column("ACTIVE", CHAR(1), nullable=False, server_default="Y"),
    Column("NAME", String(50)),
    Column("LAST_NAME", String(50)),
    Column("EMAIL", String(255)),
    Column("DATE_REGISTER", DateTime, nullable=False),
    Column("LID", CHAR(2)),
    Column("XML_ID", String(255)),
    Column("EXTERNAL_AUTH_ID", String(255)),
    Index("IX_B_USER_XML_ID", "XML_ID"),
    Index("ix_b_user_email", "EMAIL"),
)

# One column per USER field is added at run time (ALTER TABLE); see `uts_user_with`.
uts_user = Table(
    "b_uts_user",
    metadata,
    Column("VALUE_ID", Integer, primary_key=True, autoincrement=False),
)

utm_user = Table(
    "b_utm_user",
    metadata,
    Column("ID", Integer, primary_key=True, autoincrement=True),
    Column("VALUE_ID", Integer, nullable=False, index=True),
    Column("FIELD_ID", Integer, nullable=False, index=True),
    Column("VALUE", Text),
    Column("VALUE_INT", Integer),
    Column("VALUE_DOUBLE", Float),
    Column("VALUE_DATE", DateTime),
)

CORE_TABLES = ("b_hlblock_entity", "b_user_field")
LANG_TABLES = ("b_hlblock_entity_lang", "b_hlblock_entity_rights")
NO_CORE_MESSAGE = (
    "this database has no Bitrix core tables (b_hlblock_entity, b_user_field …): "
    "is database.url pointing at the Bitrix database?"
)


def uts_user_with(fields: Sequence[str]) -> Table:
    """b_uts_user with the given USER field columns (text, as Bitrix makes string fields)."""
    return Table(
        "b_uts_user",
        MetaData(),
        Column("VALUE_ID", Integer, primary_key=True, autoincrement=False),
        *[Column(name, Text) for name in fields],
    )


def core_present(conn: Connection) -> bool:
    """Whether the HL-block and user-field tables exist (the highloadblock module is installed)."""
    insp = inspect(conn)
    return all(insp.has_table(name) for name in CORE_TABLES)


def require_core(conn: Connection) -> None:
    if not core_present(conn):
        raise SchemaError(NO_CORE_MESSAGE)


# The DDL of main/install/mysql/install.sql and highloadblock/install/db/mysql/install.sql, trimmed
# to the columns above. b_uts_user is created the way CUserTypeManager creates it on the first field.
_MYSQL_DDL: dict[str, str] = {
    "b_hlblock_entity": """
        CREATE TABLE IF NOT EXISTS b_hlblock_entity (
            ID int(11) unsigned NOT NULL AUTO_INCREMENT,
            NAME varchar(100) NOT NULL,
            TABLE_NAME varchar(64) NOT NULL,
            PRIMARY KEY (ID),
            UNIQUE KEY NAME (NAME),
            UNIQUE KEY TABLE_NAME (TABLE_NAME)
        )""",
    "b_hlblock_entity_lang": """
        CREATE TABLE IF NOT EXISTS b_hlblock_entity_lang (
            ID int(11) unsigned NOT NULL,
            LID char(2) NOT NULL,
            NAME varchar(100) NOT NULL
        )""",
    "b_hlblock_entity_rights": """
        CREATE TABLE IF NOT EXISTS b_hlblock_entity_rights (
            ID int(11) unsigned NOT NULL AUTO_INCREMENT,
            HL_ID int(11) unsigned NOT NULL,
            TASK_ID int(11) unsigned NOT NULL,
            ACCESS_CODE varchar(50) NOT NULL,
            PRIMARY KEY (ID)
        )""",
    "b_user_field": """
        CREATE TABLE IF NOT EXISTS b_user_field (
            ID int(11) NOT NULL AUTO_INCREMENT,
            ENTITY_ID varchar(50),
            FIELD_NAME varchar(50),
            USER_TYPE_ID varchar(50),
            XML_ID varchar(255),
            SORT int,
            MULTIPLE char(1) NOT NULL DEFAULT 'N',
            MANDATORY char(1) NOT NULL DEFAULT 'N',
            SHOW_FILTER char(1) NOT NULL DEFAULT 'N',
            SHOW_IN_LIST char(1) NOT NULL DEFAULT 'Y',
            EDIT_IN_LIST char(1) NOT NULL DEFAULT 'Y',
            IS_SEARCHABLE char(1) NOT NULL DEFAULT 'N',
            SETTINGS text,
            PRIMARY KEY (ID),
            UNIQUE ux_user_type_entity (ENTITY_ID, FIELD_NAME)
        )""",
    "b_user_field_lang": """
        CREATE TABLE IF NOT EXISTS b_user_field_lang (
            USER_FIELD_ID int(11) NOT NULL,
            LANGUAGE_ID char(2) NOT NULL,
            EDIT_FORM_LABEL varchar(255),
            LIST_COLUMN_LABEL varchar(255),
            LIST_FILTER_LABEL varchar(255),
            ERROR_MESSAGE varchar(255),
            HELP_MESSAGE varchar(255),
            PRIMARY KEY (USER_FIELD_ID, LANGUAGE_ID)
        )""",
    "b_user": """
        CREATE TABLE IF NOT EXISTS b_user (
            ID int(18) NOT NULL AUTO_INCREMENT,
            TIMESTAMP_X timestamp NOT NULL DEFAULT current_timestamp ON UPDATE current_timestamp,
            LOGIN varchar(50) NOT NULL,
            PASSWORD varchar(255) NOT NULL,
            ACTIVE char(1) NOT NULL DEFAULT 'Y',
            NAME varchar(50),
            LAST_NAME varchar(50),
            EMAIL varchar(255),
            DATE_REGISTER datetime NOT NULL,
            LID char(2),
            XML_ID varchar(255),
            EXTERNAL_AUTH_ID varchar(255),
            PRIMARY KEY (ID),
            UNIQUE ix_login (LOGIN, EXTERNAL_AUTH_ID),
            INDEX ix_b_user_email (EMAIL),
            INDEX IX_B_USER_XML_ID (XML_ID)
        )""",
    "b_uts_user": """
        CREATE TABLE IF NOT EXISTS b_uts_user (
            VALUE_ID int(11) NOT NULL,
            PRIMARY KEY (VALUE_ID)
        )""",
    "b_utm_user": """
        CREATE TABLE IF NOT EXISTS b_utm_user (
            ID int(11) NOT NULL AUTO_INCREMENT,
            VALUE_ID int(11) NOT NULL,
            FIELD_ID int(11) NOT NULL,
            VALUE text,
            VALUE_INT int(11),
            VALUE_DOUBLE float,
            VALUE_DATE datetime,
            INDEX ix_utm_USER_1 (FIELD_ID),
            INDEX ix_utm_USER_2 (VALUE_ID),
            PRIMARY KEY (ID)
        )""",
}

_STRING_FIELD_SETTINGS = (
    'a:6:{s:4:"SIZE";i:20;s:4:"ROWS";i:1;s:6:"REGEXP";s:0:"";s:10:"MIN_LENGTH";i:0;'
    's:10:"MAX_LENGTH";i:0;s:13:"DEFAULT_VALUE";s:0:"";}'
)


def _is_mysql(conn: Connection) -> bool:
    return conn.dialect.name in ("mysql", "mariadb")


def create_stand_in_core(
    engine: Engine, *, with_lang: bool = True, user_fields: Sequence[str] = ("UF_1C_CONTRACTOR_ID",)
) -> None:
    """Create the minimal Bitrix core (for the demo and tests) and register USER string fields.

    `with_lang=False` gives a core as old as the ones without b_hlblock_entity_lang/_rights.
    Tables that already exist are left as they are, so calling it twice is harmless.
    """
    names = [n for n in _MYSQL_DDL if with_lang or n not in LANG_TABLES]
    with engine.begin() as conn:
        if _is_mysql(conn):
            for name in names:
                conn.exec_driver_sql(_MYSQL_DDL[name])
        else:
            metadata.create_all(conn, tables=[metadata.tables[n] for n in names])
        for name in user_fields:
            register_user_field(conn, name)


def register_user_field(conn: Connection, name: str) -> None:
    """Add a USER string field as the admin would: its b_user_field row and a text column in b_uts_user."""
    exists = conn.execute(
        select(user_field.c.ID).where(user_field.c.ENTITY_ID == "USER", user_field.c.FIELD_NAME == name)
    ).first()
    columns = {c["name"].upper() for c in inspect(conn).get_columns("b_uts_user")}
    if name.upper() not in columns:
        quoted = conn.dialect.identifier_preparer.quote(name)
        conn.exec_driver_sql(f"ALTER TABLE b_uts_user ADD {quoted} text")
    if exists is None:
        conn.execute(
            insert(user_field).values(
                ENTITY_ID="USER", FIELD_NAME=name, USER_TYPE_ID="string", XML_ID=name, SORT=100,
                MULTIPLE="N", MANDATORY="N", SHOW_FILTER="N", SHOW_IN_LIST="Y", EDIT_IN_LIST="Y",
                IS_SEARCHABLE="N", SETTINGS=_STRING_FIELD_SETTINGS,
            )
        )


def add_user(
    conn: Connection,
    *,
    login: str,
    email: str | None = None,
    active: bool = True,
    xml_id: str | None = None,
    fields: Mapping[str, str] | None = None,
) -> int:
    """Insert a site user (and its USER field values into b_uts_user); returns b_user.ID."""
    now = datetime.now().replace(microsecond=0)
    result = conn.execute(
        insert(user).values(
            LOGIN=login, PASSWORD="", ACTIVE="Y" if active else "N", EMAIL=email, XML_ID=xml_id,
            DATE_REGISTER=now, TIMESTAMP_X=now, LID="s1",
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    user_id = int(key[0])
    if fields:
        uts = table("b_uts_user", column("VALUE_ID"), *[column(name) for name in fields])
        conn.execute(insert(uts).values(VALUE_ID=user_id, **dict(fields)))
    return user_id

