"""`syncd migrate`: the three HL-blocks and syncd's own tables, created or adopted."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from syncd.bitrix.core import require_core
from syncd.bitrix.migrate import MigrateReport, migrate
from syncd.bitrix.owntables import OwnTablesReport, upgrade_own_tables
from syncd.config import Config
from syncd.errors import DatabaseError
from syncd.plumbing.db import make_engine, safe_url


def migrate_database(cfg: Config) -> tuple[OwnTablesReport, MigrateReport]:
    """syncd's own tables upgraded, then the blocks created or adopted; DatabaseError when the user lacks
    the grants or the database is unreachable, SchemaError when it is not a Bitrix database."""
    engine = make_engine(cfg.database)
    try:
        # Checked first so syncd's tables are never created in a database that is not Bitrix's.
        with engine.connect() as conn:
            require_core(conn)
        own = upgrade_own_tables(engine)
        report = migrate(engine, cfg.bitrix)
    except OperationalError as exc:
        # 1044 no access to the database, 1142 table, 1143 column: the user has a run's grants only.
        args: tuple[object, ...] = getattr(exc.orig, "args", ())
        denied = bool(args) and args[0] in (1044, 1142, 1143)
        hint = ("; syncd migrate needs CREATE, ALTER and INDEX on the Bitrix database besides a run's "
                "SELECT, INSERT, UPDATE, DELETE (see docs/security.md)") if denied else ""
        raise DatabaseError(f"cannot use the database {safe_url(engine)}: {exc.orig}{hint}") from None
    finally:
        engine.dispose()
    return own, report
