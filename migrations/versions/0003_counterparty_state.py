"""syncd_counterparty_state: a digest of what syncd last wrote for each counterparty.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

An export repeats most counterparties unchanged; with the digest of the values last applied, the
writer reads back and compares only the counterparties whose digest moved. checked_at bounds how
long a digest is trusted, so that a hand edit in the HL-blocks is put right by a full compare.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "syncd_counterparty_state",
        sa.Column("guid", sa.String(36), primary_key=True),
        sa.Column("digest", sa.String(32), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),  # UTC: when rows and digest last agreed
    )


def downgrade() -> None:
    op.drop_table("syncd_counterparty_state")
