"""syncd_counterparty_state.as_of_utc: the as-of time (UTC) of the export that last confirmed a counterparty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

A balance row's UF_UPDATED_AT is naive, in the site's zone: across the autumn DST change an export
written 30 minutes after another can carry an earlier local time, and "newer" compared there drops
its debts. The writer compares this UTC stamp instead. Rows written before this migration have none
(NULL): the writer falls back to UF_UPDATED_AT read in bitrix.timezone (the earlier reading when it
is ambiguous) until the next export confirms them.

Migrations describe syncd's own tables (syncd_*) with explicit columns: they must not import
syncd code, whose table definitions move on while a migration stays as it was written.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("syncd_counterparty_state") as batch:  # batch: SQLite (the demo) too
        batch.add_column(sa.Column("as_of_utc", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("syncd_counterparty_state") as batch:
        batch.drop_column("as_of_utc")
