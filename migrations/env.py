"""Alembic environment for syncd's own tables in the Bitrix database.

It runs only on a connection handed in by syncd (`config.attributes["connection"]`), never from
an alembic.ini URL: the Bitrix database's credentials live in syncd's config. The version table
has a syncd_ name so it cannot collide with anything else in the Bitrix database.
"""

from __future__ import annotations

from alembic import context

VERSION_TABLE = "syncd_alembic_version"

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("syncd migrations run through `syncd migrate` (syncd.bitrix.owntables), on a live connection")

context.configure(connection=connection, version_table=VERSION_TABLE, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
