"""The ledger: syncd's own record of every file it took up and every run, in the Bitrix database.

Tables are created by the Alembic migrations in migrations/ (`syncd migrate`); the definitions
here must match them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Double, Integer, MetaData, String, Table, Text

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
    Column("trigger", String(16), nullable=False),  # once | daemon | cron
    Column("exit_code", Integer, nullable=True),
    Column("summary", Text, nullable=True),
    Column("error", Text, nullable=True),
)
