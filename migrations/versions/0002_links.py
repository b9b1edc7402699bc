"""syncd_links: counterparty-to-user links an admin made with `syncd links add` (the `manual` strategy).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

A link is keyed by a counterparty GUID or by an INN (then it covers every counterparty of that
company, all its KPPs); one key links to one user, because an HL row carries one user id.
key_value is stored normalised (GUID lower case, INN digits only) so the unique key really is
unique. user_id is not a foreign key: b_user is Bitrix's table, and a user deleted there must not
make Bitrix's own delete fail.

Migrations describe syncd's own tables (syncd_*) with explicit columns: they must not import
syncd code, whose table definitions move on while a migration stays as it was written.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite autoincrements only an INTEGER PRIMARY KEY, not a BIGINT one (the demo runs on SQLite).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "syncd_links",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("key_kind", sa.String(4), nullable=False),  # guid | inn
        sa.Column("key_value", sa.String(36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),  # UTC
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.UniqueConstraint("key_kind", "key_value", name="ux_syncd_links_key"),
    )
    op.create_index("ix_syncd_links_user_id", "syncd_links", ["user_id"])


def downgrade() -> None:
    op.drop_table("syncd_links")
