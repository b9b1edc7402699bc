"""The ledger: syncd's own record of every file it took up and every run, in the Bitrix database.

Tables are created by the Alembic migrations in migrations/ (`syncd migrate`); the definitions
here must match them.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Double,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    func,
    or_,
    select,
)

metadata = MetaData()

BLOCK_ROLES = ("balance", "payments", "documents")
ACTIONS = ("inserted", "updated", "unchanged", "deleted")

imports = Table(
    "syncd_imports",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("file_name", String(255), nullable=False),
    Column("file_size", BigInteger, nullable=False),
    Column("file_mtime", Double, nullable=True),
    Column("sha256", String(64), nullable=False, index=True),
    Column("export_id", String(36), nullable=True, index=True),
    Column("generated_at", DateTime, nullable=True),  # UTC
    Column("mode", String(8), nullable=True),
    Column("status", String(16), nullable=False, index=True),  # applied duplicate superseded held rejected
    *[
        Column(f"{role}_{action}", Integer, nullable=False, server_default="0")
        for role in BLOCK_ROLES
        for action in ACTIONS
    ],
    Column("started_at", DateTime, nullable=False),  # UTC
    Column("finished_at", DateTime, nullable=True),  # UTC
    Column("host", String(255), nullable=True),
    Column("error", Text, nullable=True),  # why rejected or held
)

runs = Table(
    "syncd_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("started_at", DateTime, nullable=False, index=True),  # UTC
    Column("finished_at", DateTime, nullable=True),  # UTC
    Column("host", String(255), nullable=True),
    Column("trigger", String(16), nullable=False),  # once | daemon | cron | watch
    Column("exit_code", Integer, nullable=True),
    Column("summary", Text, nullable=True),
    Column("error", Text, nullable=True),
)

# What syncd last wrote per counterparty (see hlblock.Writer): lets a run skip unchanged ones.
counterparty_state = Table(
    "syncd_counterparty_state",
    metadata,
    Column("guid", String(36), primary_key=True),
    Column("digest", String(32), nullable=False),
    Column("checked_at", DateTime, nullable=False),  # UTC
    # UTC as-of time of the export that last confirmed the counterparty (its balance row's UF_UPDATED_AT
    # is the same moment, naive in the site's zone); NULL for rows written before migration 0004.
    Column("as_of_utc", DateTime, nullable=True),
)


# ---------------------------------------------------------------- queries

APPLIED = "applied"
DUPLICATE = "duplicate"
SUPERSEDED = "superseded"
HELD = "held"
REJECTED = "rejected"
OVERRIDDEN = "overridden"  # an applied full export that an approved, older one overrode


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def find_applied(conn: Connection, *, export_id: str | None, sha256: str | None) -> Row[Any] | None:
    """The applied import this file repeats (same export id or same bytes), if any."""
    conds = [imports.c.sha256 == sha256] if sha256 else []
    if export_id:
        conds.append(imports.c.export_id == export_id)
    if not conds:
        return None
    cond = or_(*conds)
    q = select(imports).where(imports.c.status == APPLIED, cond).order_by(imports.c.id).limit(1)
    return conn.execute(q).first()


def newest_full(conn: Connection, *, until: datetime | None = None) -> datetime | None:
    """As-of time (UTC) of the newest applied full export; with `until`, of the newest not after it
    (one dated ahead of the clock is not trusted to supersede anything)."""
    q = select(func.max(imports.c.generated_at)).where(imports.c.status == APPLIED, imports.c.mode == "full")
    if until is not None:
        q = q.where(imports.c.generated_at <= until)
    value = conn.execute(q).scalar()
    return value if isinstance(value, datetime) else None


def record(conn: Connection, **values: Any) -> int:
    """Add a ledger entry; for a held file already held with the same content, refresh that entry."""
    values.setdefault("host", socket.gethostname())
    if values.get("status") == HELD:
        # Held before it was downloaded (dated ahead of the clock), a file has no sha256 yet: its export id.
        same = imports.c.sha256 == values["sha256"] if values["sha256"] else imports.c.export_id == values["export_id"]
        prior = conn.execute(select(imports.c.id).where(imports.c.status == HELD, same)).scalar()
        if prior is not None:
            conn.execute(imports.update().where(imports.c.id == prior).values(**values))
            return int(prior)
    result = conn.execute(imports.insert().values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def override_newer(conn: Connection, generated_at: datetime, import_id: int) -> int:
    """An approved export is the truth as of its time: applied full exports dated after it no longer
    supersede anything (they become `overridden`). Returns how many."""
    q = (imports.update()
         .where(imports.c.status == APPLIED, imports.c.mode == "full", imports.c.generated_at > generated_at)
         .values(status=OVERRIDDEN, error=f"overridden by the approved import #{import_id}"))
    return int(conn.execute(q).rowcount)


def recent_imports(conn: Connection, limit: int = 20) -> list[Row[Any]]:
    return list(conn.execute(select(imports).order_by(imports.c.id.desc()).limit(limit)))
