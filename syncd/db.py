"""Connecting to the Bitrix database. The only place that builds an Engine."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from syncd.config import DatabaseConfig
from syncd.errors import ConfigError


def database_url(cfg: DatabaseConfig) -> URL:
    """The configured URL with the password from the environment and utf8mb4 for MySQL."""
    try:
        url = make_url(cfg.url)
    except ArgumentError:
        raise ConfigError("database.url is not a valid URL (expected mysql+pymysql://user@host:3306/dbname)") from None
    if url.drivername in ("mysql", "mariadb", "mariadb+pymysql"):
        url = url.set(drivername="mysql+pymysql")
    password = cfg.password()
    if password is not None:
        url = url.set(password=password)
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


def safe_url(engine: Engine) -> str:
    """The URL for messages and logs: never with the password."""
    return engine.url.render_as_string(hide_password=True)


def db_reason(exc: SQLAlchemyError) -> str:
    """The driver's own words without SQL text or parameters (they may hold data, never needed in a message)."""
    orig = getattr(exc, "orig", None)
    if orig is not None and getattr(orig, "args", None):
        args = orig.args
        return f"{args[0]} {args[1]}" if len(args) > 1 else str(args[0])
    return exc.__class__.__name__
