"""Connecting to the Bitrix database. The only place that builds an Engine."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DataError, SQLAlchemyError

from syncd.config import DatabaseConfig
from syncd.contract.values import show_character
from syncd.errors import ConfigError


def database_url(cfg: DatabaseConfig) -> URL:
    """The configured URL with the password from the environment and utf8mb4 for MySQL."""
    try:
        url = make_url(cfg.url)
    except ArgumentError:
        raise ConfigError("database.url is not a valid URL (expected mysql+pymysql://user@host:3306/dbname)") from None
    except ValueError:  # SQLAlchemy's int() of the port
        raise ConfigError("database.url: the port is not a number (expected mysql+pymysql://user@host:3306/dbname)"
                          ) from None
    if url.drivername in ("mysql", "mariadb", "mariadb+pymysql"):
        url = url.set(drivername="mysql+pymysql")
    password = cfg.password()
    if cfg.password_env and not password:
        raise ConfigError(f"database.password_env names ${cfg.password_env}, but that variable is not set or "
                          "empty in syncd's environment (the service reads it from /etc/syncd/<site>.env)")
    if password is not None:
        url = url.set(password=password)
    _note_password_source(cfg, has_password=url.password is not None)
    if url.drivername == "mysql+pymysql" and "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


def make_engine(cfg: DatabaseConfig, *, connect_timeout: int = 15) -> Engine:
    url = database_url(cfg)
    args: dict[str, object] = {}
    if url.drivername == "mysql+pymysql":
        args = {"connect_timeout": connect_timeout, "read_timeout": 600, "write_timeout": 600, "local_infile": False}
    engine = create_engine(url, pool_pre_ping=True, connect_args=args)
    if url.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_fk(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Python's sqlite3 opens transactions lazily; BEGIN explicitly so one file is one transaction.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN")

    return engine


ACCESS_DENIED = 1045

# Where the password of the configured database comes from, for MySQL's access-denied (which says only
# whether one was sent). Set by database_url(): one process, one configuration (a reload sets it again).
_password_source: dict[str, str] = {}


def _note_password_source(cfg: DatabaseConfig, *, has_password: bool) -> None:
    if cfg.password_env:
        where = f"the password is the value of ${cfg.password_env} (database.password_env)"
    elif has_password:
        where = "the password is the one in database.url"
    else:
        where = "no password was given: set database.password_env to the variable that holds it"
    _password_source["where"] = where


def safe_url(engine: Engine) -> str:
    """The URL for messages and logs: never with the password."""
    return engine.url.render_as_string(hide_password=True)


def db_reason(exc: SQLAlchemyError) -> str:
    """The driver's own words without SQL text or parameters (they may hold data, never needed in a message)."""
    orig = getattr(exc, "orig", None)
    if orig is not None and getattr(orig, "args", None):
        args = orig.args
        if len(args) > 1 and args[0] == ACCESS_DENIED and "where" in _password_source:
            return f"{args[0]} {args[1]}; {_password_source['where']}"
        return f"{args[0]} {args[1]}" if len(args) > 1 else str(args[0])
    return exc.__class__.__name__


# Errors that a value caused, not the server or the network: out of range (1264), data truncated
# (1265), a bad date or number (1292, 1366, 1367), too long for the column (1406).
_DATA_ERRORS = frozenset({1264, 1265, 1292, 1366, 1367, 1406})


def data_error_reason(exc: BaseException) -> str | None:
    """What was wrong when `exc` says a value of the file could not be stored (a server's data error, or a
    character the connection's encoding cannot carry); None for anything else (a lost connection, a lock
    wait timeout, a deadlock: not the file's fault)."""
    if isinstance(exc, UnicodeEncodeError):
        bad = exc.object[exc.start : exc.start + 1] if isinstance(exc.object, str) else "?"
        return (f"character {show_character(bad)} cannot be sent over the database connection, whose charset "
                "cannot carry it: take charset out of database.url (syncd then uses utf8mb4) or remove the "
                "character in 1C")
    if not isinstance(exc, SQLAlchemyError):
        return None
    orig = getattr(exc, "orig", None)
    code = orig.args[0] if orig is not None and getattr(orig, "args", None) else None
    if isinstance(exc, DataError) or code in _DATA_ERRORS:
        return (f"the database refused a value of this file ({db_reason(exc)}); correct it in 1C, or the "
                "column if it was changed by hand")
    return None
