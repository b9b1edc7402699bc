"""A Bitrix site for end-to-end tests: stand-in core, migrated blocks, a local export folder, a config.

`Site` reads the three blocks and the ledger back as plain rows, so tests assert what a buyer or
an admin would see.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

from syncd import config as config_mod
from syncd import ledger
from syncd.bitrix import core
from syncd.bitrix.migrate import migrate, upgrade_own_tables
from syncd.config import Config
from syncd.plumbing.db import make_engine
from syncd.run import RunResult, run_once

OLD = time.time() - 3600  # an mtime old enough for min_age


@dataclass
class Site:
    cfg: Config
    engine: Engine
    exports: Path
    state: Path

    def drop(self, name: str, content: bytes, *, mtime: float = OLD) -> Path:
        path = self.exports / name
        path.write_bytes(content)
        os.utime(path, (mtime, mtime))
        return path

    def run(self, **kwargs: Any) -> RunResult:
        return run_once(self.cfg, engine=self.engine, **kwargs)

    def rows(self, table: str, order: str = "ID") -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))]

    def balance(self) -> dict[str, dict[str, Any]]:
        return {r["UF_CONTRACTOR_XML_ID"]: r for r in self.rows("contractor_balance")}

    def payments(self) -> dict[str, dict[str, Any]]:
        return {r["UF_PAYMENT_XML_ID"]: r for r in self.rows("contractor_payments")}

    def documents(self) -> list[dict[str, Any]]:
        return self.rows("contractor_documents")

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a buyer could see, to compare before and after."""
        return (self.rows("contractor_balance"), self.rows("contractor_payments"), self.rows("contractor_documents"))

    def imports(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(ledger.imports).order_by(ledger.imports.c.id))]

    def add_user(self, login: str, **kwargs: Any) -> int:
        with self.engine.begin() as conn:
            return core.add_user(conn, login=login, **kwargs)


def make_site(db_url: str, tmp_path: Path, *, migrated: bool = False, **overrides: Mapping[str, Any]) -> Site:
    """A site on `db_url`; `migrated=True` when the database is a copy of the suite's migrated template."""
    exports = tmp_path / "exports"
    state = tmp_path / "state"
    exports.mkdir()
    data: dict[str, dict[str, Any]] = {
        "source": {"type": "local", "path": str(exports), "min_age": "60s", "timezone": "Europe/Moscow"},
        "database": {"url": db_url},
        "bitrix": {"timezone": "Europe/Moscow"},
        "state": {"dir": str(state)},
    }
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    cfg = config_mod.from_mapping(data)
    engine = make_engine(cfg.database)
    if not migrated:
        core.create_stand_in_core(engine)
        upgrade_own_tables(engine)
        migrate(engine, cfg.bitrix)
    return Site(cfg, engine, exports, state)
