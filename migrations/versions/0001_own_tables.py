"""syncd's own tables: syncd_imports (every file taken up) and syncd_runs (every run).

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Migrations describe syncd's own tables (syncd_*) with explicit columns: they must not import
syncd code, whose table definitions move on while a migration stays as it was written.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite autoincrements only an INTEGER PRIMARY KEY, not a BIGINT one (the demo runs on SQLite).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _counters() -> list[sa.Column[int]]:
    return [
        sa.Column(f"{role}_{action}", sa.Integer(), nullable=False, server_default="0")
        for role in ("balance", "payments", "documents")
        for action in ("inserted", "updated", "unchanged", "deleted")
    ]


def upgrade() -> None:
    op.create_table(
        "syncd_imports",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("file_mtime", sa.Double(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("export_id", sa.String(36), nullable=True),
        sa.Column("generated_at", sa.DateTime(), nullable=True),
        sa.Column("mode", sa.String(8), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        *_counters(),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_syncd_imports_sha256", "syncd_imports", ["sha256"])
    op.create_index("ix_syncd_imports_export_id", "syncd_imports", ["export_id"])
    op.create_index("ix_syncd_imports_status", "syncd_imports", ["status"])

    op.create_table(
        "syncd_runs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_syncd_runs_started_at", "syncd_runs", ["started_at"])


def downgrade() -> None:
    op.drop_table("syncd_runs")
    op.drop_table("syncd_imports")
