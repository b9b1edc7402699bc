"""Create and upgrade syncd's own tables (syncd_*) with the Alembic migrations shipped in syncd.migrations.

The migrations are found as package data, so the same code works from a source checkout and from
an installed wheel; no alembic.ini is involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

# Alembic (with mako and pygments) costs ~0.5 s and ~10 MB at import; only `migrate` needs it, so every
# other command, run-once included, imports it lazily.
if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "syncd_alembic_version"


@dataclass(frozen=True)
class OwnTablesReport:
    before: str | None  # revision before the upgrade, None if the tables did not exist
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def line(self) -> str:
        if not self.changed:
            return f"syncd tables: up to date (revision {self.after})"
        if self.before is None:
            return f"syncd tables: created (revision {self.after})"
        return f"syncd tables: upgraded from revision {self.before} to {self.after}"


def script_location() -> str:
    location = files("syncd.migrations")
    path = Path(str(location))
    if not (path / "env.py").is_file():
        # A zipped install would need extracting; syncd is never installed that way.
        raise RuntimeError(f"syncd's migrations are not a folder on disk: {location}")
    return str(path)


def alembic_config(conn: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    cfg.set_main_option("path_separator", "os")
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade_own_tables(engine: Engine) -> OwnTablesReport:
    """`alembic upgrade head` for the syncd_* tables; returns the revisions before and after."""
    from alembic import command

    with engine.begin() as conn:
        before = current_revision(conn)
        command.upgrade(alembic_config(conn), "head")
        after = current_revision(conn)
    return OwnTablesReport(before, after)
