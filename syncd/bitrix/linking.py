"""Which site user each row of the three blocks belongs to: UF_BITRIX_USER_ID, recomputed from the links.

Each run calls `refresh_links` before its files (syncd.run.runner); the admin commands of
syncd.admin.links call `refresh` inside their own transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, exists, func, inspect, select, update

from syncd.bitrix.blocks import Blocks, chunks
from syncd.bitrix.schema import block_specs
from syncd.bitrix.users import LINKS_TABLE, Linker, load_linker
from syncd.config import Config
from syncd.errors import SchemaError


def blocks_of(cfg: Config) -> Blocks:
    return Blocks.from_specs(block_specs(cfg.bitrix.blocks))


def require_tables(conn: Connection, blocks: Blocks, *, links: bool) -> None:
    insp = inspect(conn)
    missing = [t.name for t in (blocks.balance, blocks.payments, blocks.documents) if not insp.has_table(t.name)]
    if links and not insp.has_table(LINKS_TABLE):
        missing.append(LINKS_TABLE)
    if missing:
        raise SchemaError(f"the database is not ready: no table {', '.join(missing)} (run `syncd migrate`)")




@dataclass
class RefreshCounts:
    """Rows whose UF_BITRIX_USER_ID changed, per block, and where the balance block stands now."""

    balance: int = 0
    payments: int = 0
    documents: int = 0
    counterparties: int = 0  # rows in the balance block
    linked: int = 0  # … of them with a user
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        return self.balance + self.payments + self.documents

    @property
    def unlinked(self) -> int:
        return self.counterparties - self.linked

    def line(self) -> str:
        return (
            f"links refreshed in {self.seconds:.2f}s: rows changed balance {self.balance}, payments {self.payments}, "
            f"documents {self.documents}; {self.linked} of {self.counterparties} counterparties linked, "
            f"{self.unlinked} without a user"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": {"balance": self.balance, "payments": self.payments, "documents": self.documents},
            "counterparties": self.counterparties,
            "linked": self.linked,
            "unlinked": self.unlinked,
            "seconds": round(self.seconds, 3),
        }


def refresh_rows(conn: Connection, cfg: Config, blocks: Blocks, linker: Linker | None = None) -> RefreshCounts:
    t0 = time.monotonic()
    if linker is None:
        linker = load_linker(conn, cfg.bitrix.link_by)
    changed = relink(conn, blocks, linker)
    bal = blocks.balance
    total, linked = conn.execute(select(func.count(), func.count(bal.c.UF_BITRIX_USER_ID)).select_from(bal)).one()
    return RefreshCounts(
        balance=changed["balance"],
        payments=changed["payments"],
        documents=changed["documents"],
        counterparties=int(total),
        linked=int(linked),
        seconds=time.monotonic() - t0,
    )


def refresh_links(
    engine: Engine,
    cfg: Config,
    *,
    linker: Linker | None = None,
    before_commit: Callable[[], None] | None = None,
) -> RefreshCounts:
    """Recompute UF_BITRIX_USER_ID for every row of the three blocks, in one transaction.

    Rows without a user are retried, and a link that changed since the rows were written (user
    deactivated, field edited, manual link added) reaches all three blocks. Raises SchemaError if a
    configured field or table is missing. `before_commit` lets the runner verify its run lock
    (an exception there rolls everything back).
    """
    blocks = blocks_of(cfg)
    with engine.begin() as conn:
        require_tables(conn, blocks, links=False)
        counts = refresh_rows(conn, cfg, blocks, linker)
        if before_commit is not None:
            before_commit()
    return counts


def _set_users(conn: Connection, table: Table, users: list[tuple[int, int | None]]) -> None:
    """UF_BITRIX_USER_ID by row ID: every row may get a different user, so one UPDATE per user
    would be one per row when 100,000 counterparties are linked the first time."""
    if not users:
        return
    if conn.dialect.name not in ("mysql", "mariadb"):
        # SQLite (the demo) runs executemany in-process: one statement per row costs nothing there.
        conn.execute(
            update(table).where(table.c.ID == bindparam("row_id")).values(UF_BITRIX_USER_ID=bindparam("user")),
            [{"row_id": i, "user": u} for i, u in users],
        )
        return
    # An UPDATE joined to a derived table of (ID, user) pairs, a chunk per statement. Written as SQL
    # text: SQLAlchemy takes longer to compile a 1000-SELECT UNION than the server takes to run it.
    name = conn.dialect.identifier_preparer.quote(table.name)
    for chunk in chunks(users, 1000):
        pairs = " UNION ALL ".join(["SELECT %s AS id, %s AS u"] + ["SELECT %s, %s"] * (len(chunk) - 1))
        conn.exec_driver_sql(
            f"UPDATE {name} AS t JOIN ({pairs}) AS want ON t.ID = want.id SET t.UF_BITRIX_USER_ID = want.u",
            tuple(v for pair in chunk for v in pair),
        )


def relink(conn: Connection, blocks: Blocks, linker: Linker) -> dict[str, int]:
    """Set UF_BITRIX_USER_ID on every row of the three blocks from the linker; returns rows changed per block.

    The balance block has one row per counterparty and its INN/KPP (the inn strategy needs them),
    so links are decided there, in memory, and only changed rows are written. Payments and
    documents then take their counterparty's user from the balance block in one UPDATE … JOIN per
    block, run by the database: no rows travel, and a run that changes nothing costs one read of
    the balance block plus two index joins. Rows whose counterparty has no balance row (on_missing
    = delete keeps payments) are linked by GUID alone.
    """
    bal = blocks.balance
    key, user = bal.c.UF_CONTRACTOR_XML_ID, bal.c.UF_BITRIX_USER_ID
    fix: list[tuple[int, int | None]] = []
    for row_id, guid, inn, kpp, current in conn.execute(select(bal.c.ID, key, bal.c.UF_INN, bal.c.UF_KPP, user)):
        target = linker.user_for(guid, inn, kpp) if guid else None
        if target != current:
            fix.append((row_id, target))
    _set_users(conn, bal, fix)
    changed = {"balance": len(fix)}
    for role, t in (("payments", blocks.payments), ("documents", blocks.documents)):
        tkey, tuser = t.c.UF_CONTRACTOR_XML_ID, t.c.UF_BITRIX_USER_ID
        follow = update(t).where(tkey == key, tuser.is_distinct_from(user)).values(UF_BITRIX_USER_ID=user)
        changed[role] = int(conn.execute(follow).rowcount)
        orphans = select(t.c.ID, tkey, tuser).where(~exists().where(key == tkey))
        loose = [(i, want) for i, g, u in conn.execute(orphans) if (want := linker.user_for(g) if g else None) != u]
        _set_users(conn, t, loose)
        changed[role] += len(loose)
    return changed
