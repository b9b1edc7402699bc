"""Which Bitrix user is which 1C counterparty.

Links are resolved set-based: each strategy is one query that loads its whole mapping, so an
export of any size costs one query per strategy, not one per counterparty.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, inspect, text

from syncd.errors import SchemaError

_FIELD = re.compile(r"^UF_[A-Z0-9_]+$")


@dataclass
class Linker:
    """Maps a counterparty GUID to a user id (lowest active user id when several match)."""

    by_guid: dict[str, int] = field(default_factory=dict)

    def user_for(self, guid: str) -> int | None:
        return self.by_guid.get(guid)


def _user_field_map(conn: Connection, field_name: str) -> dict[str, int]:
    if not _FIELD.match(field_name):
        raise SchemaError(f"bitrix.link_by: {field_name!r} is not a user field name (UF_…)")
    columns = {c["name"].upper() for c in inspect(conn).get_columns("b_uts_user")} if inspect(conn).has_table(
        "b_uts_user"
    ) else set()
    if field_name not in columns:
        raise SchemaError(
            f"bitrix.link_by: user field {field_name} does not exist (no column in b_uts_user); "
            "create it in the Bitrix admin (Settings → User fields) or change link_by"
        )
    rows = conn.execute(
        text(
            f"SELECT u.ID, uts.{field_name} FROM b_user u JOIN b_uts_user uts ON uts.VALUE_ID = u.ID "
            f"WHERE u.ACTIVE = 'Y' AND uts.{field_name} IS NOT NULL AND uts.{field_name} <> '' ORDER BY u.ID"
        )
    )
    mapping: dict[str, int] = {}
    for user_id, value in rows:
        key = str(value).strip().lower()
        mapping.setdefault(key, int(user_id))  # ordered by ID: the lowest wins
    return mapping


def load_linker(conn: Connection, link_by: Sequence[str]) -> Linker:
    linker = Linker()
    for strategy in reversed(link_by):  # earlier strategies overwrite later ones: first that finds wins
        kind, _, arg = strategy.partition(":")
        if kind == "user_field":
            linker.by_guid.update(_user_field_map(conn, arg))
    return linker
