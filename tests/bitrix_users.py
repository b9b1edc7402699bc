"""Bitrix users and user fields for the linking tests, made the way Bitrix makes them.

The stand-in core (syncd.bitrix.core) creates b_user, b_uts_user, b_utm_user and b_user_field and
registers single string fields; what it does not offer is written here: MULTIPLE fields (values in
b_utm_user, a serialized copy in the b_uts_user column, as CUserTypeManager saves them), editing a
user's field later, and rows in the three blocks without going through an export.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, column, insert, select, table, text, update

from syncd import config as config_mod
from syncd.bitrix import core
from syncd.bitrix.hlblock import Blocks
from syncd.bitrix.migrate import migrate, upgrade_own_tables
from syncd.bitrix.phpserialize import serialize
from syncd.bitrix.schema import block_specs
from syncd.config import Config
from syncd.plumbing.db import make_engine

_STRING_SETTINGS = (
    'a:6:{s:4:"SIZE";i:20;s:4:"ROWS";i:1;s:6:"REGEXP";s:0:"";s:10:"MIN_LENGTH";i:0;'
    's:10:"MAX_LENGTH";i:0;s:13:"DEFAULT_VALUE";s:0:"";}'
)


def guid(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def _child(g: str, kind: str, i: int) -> str:
    # Payment and document keys are indexed on a 36-character prefix: they must differ within it.
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{g}/{kind}/{i}"))


def register_multiple_field(conn: Connection, name: str) -> int:
    """A MULTIPLE USER string field: a text column (serialized array) plus b_utm_user rows; returns its ID."""
    conn.exec_driver_sql(f"ALTER TABLE b_uts_user ADD {name} text")
    result = conn.execute(
        insert(core.user_field).values(
            ENTITY_ID="USER", FIELD_NAME=name, USER_TYPE_ID="string", XML_ID=name, SORT=100, MULTIPLE="Y",
            MANDATORY="N", SHOW_FILTER="N", SHOW_IN_LIST="Y", EDIT_IN_LIST="Y", IS_SEARCHABLE="N",
            SETTINGS=_STRING_SETTINGS,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def set_fields(conn: Connection, user_id: int, values: Mapping[str, str | None]) -> None:
    """Save single field values of a user (creating its b_uts_user row if it has none yet)."""
    uts = table("b_uts_user", column("VALUE_ID"), *[column(n) for n in values])
    if conn.execute(select(uts.c.VALUE_ID).where(uts.c.VALUE_ID == user_id)).first() is None:
        conn.execute(insert(uts).values(VALUE_ID=user_id, **dict(values)))
    else:
        conn.execute(update(uts).where(uts.c.VALUE_ID == user_id).values(**dict(values)))


def set_multiple(conn: Connection, user_id: int, name: str, field_id: int, values: Sequence[str]) -> None:
    """Save a MULTIPLE field as Bitrix does: replace the b_utm_user rows, store the serialized array."""
    conn.execute(core.utm_user.delete().where(core.utm_user.c.VALUE_ID == user_id,
                                              core.utm_user.c.FIELD_ID == field_id))
    for v in values:
        conn.execute(insert(core.utm_user).values(VALUE_ID=user_id, FIELD_ID=field_id, VALUE=v))
    set_fields(conn, user_id, {name: serialize(list(values))})


def set_active(conn: Connection, user_id: int, active: bool) -> None:
    conn.execute(update(core.user).where(core.user.c.ID == user_id).values(ACTIVE="Y" if active else "N"))


@dataclass
class LinkSite:
    cfg: Config
    engine: Engine
    blocks: Blocks

    def user(self, login: str, **kwargs: Any) -> int:
        with self.engine.begin() as conn:
            return core.add_user(conn, login=login, email=kwargs.pop("email", f"{login}@example.com"), **kwargs)

    def counterparty(
        self, g: str, *, inn: str | None = None, kpp: str | None = None, name: str | None = None,
        debt: float = 100.0, overdue: float = 0.0, user: int | None = None, payments: int = 1, documents: int = 1,
    ) -> None:
        """A counterparty's rows in the three blocks, as an earlier export left them."""
        with self.engine.begin() as conn:
            conn.execute(insert(self.blocks.balance).values(
                UF_CONTRACTOR_XML_ID=g, UF_INN=inn, UF_KPP=kpp, UF_NAME=name or f"ООО {g[:8]}",
                UF_DEBT=debt, UF_OVERDUE_DEBT=overdue, UF_CURRENCY="RUB", UF_BITRIX_USER_ID=user,
            ))
            for i in range(payments):
                conn.execute(insert(self.blocks.payments).values(
                    UF_PAYMENT_XML_ID=_child(g, "p", i), UF_CONTRACTOR_XML_ID=g, UF_BITRIX_USER_ID=user, UF_SUM=10.0,
                ))
            for i in range(documents):
                conn.execute(insert(self.blocks.documents).values(
                    UF_DOCUMENT_XML_ID=_child(g, "d", i), UF_CONTRACTOR_XML_ID=g, UF_BITRIX_USER_ID=user, UF_AMOUNT=5.0,
                ))

    def users_of(self, g: str) -> tuple[set[int | None], set[int | None], set[int | None]]:
        """UF_BITRIX_USER_ID values of the counterparty's rows in balance, payments, documents."""
        out: list[set[int | None]] = []
        with self.engine.connect() as conn:
            for t in (self.blocks.balance, self.blocks.payments, self.blocks.documents):
                q = select(t.c.UF_BITRIX_USER_ID).where(t.c.UF_CONTRACTOR_XML_ID == g)
                out.append({r[0] for r in conn.execute(q)})
        return out[0], out[1], out[2]

    def user_of(self, g: str) -> int | None:
        """The counterparty's user, checking all three blocks agree."""
        bal, pay, doc = self.users_of(g)
        assert bal == pay == doc, (bal, pay, doc)
        assert len(bal) == 1
        return next(iter(bal))

    def with_link_by(self, *link_by: str) -> LinkSite:
        data = _config_data(str(self.engine.url.render_as_string(hide_password=False)), self.cfg.state.dir.parent)
        data["bitrix"]["link_by"] = list(link_by)
        return LinkSite(config_mod.from_mapping(data), self.engine, self.blocks)

    def sql(self, statement: str) -> list[Any]:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement))
            return list(result) if result.returns_rows else []


def _config_data(db_url: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    return {
        "source": {"type": "local", "path": str(tmp_path / "exports"), "timezone": "Europe/Moscow"},
        "database": {"url": db_url},
        "bitrix": {"timezone": "Europe/Moscow"},
        "state": {"dir": str(tmp_path / "state")},
    }


def make_link_site(
    db_url: str, tmp_path: Path, link_by: Sequence[str] = ("user_field:UF_1C_CONTRACTOR_ID",),
    user_fields: Sequence[str] = ("UF_1C_CONTRACTOR_ID", "UF_INN", "UF_KPP"),
) -> LinkSite:
    """Stand-in Bitrix core with these single USER fields, syncd's tables and blocks migrated."""
    data = _config_data(db_url, tmp_path)
    data["bitrix"]["link_by"] = list(link_by)
    cfg = config_mod.from_mapping(data)
    engine = make_engine(cfg.database)
    core.create_stand_in_core(engine, user_fields=tuple(user_fields))
    upgrade_own_tables(engine)
    report = migrate(engine, cfg.bitrix)
    assert report.ok, report.problems
    return LinkSite(cfg, engine, Blocks.from_specs(block_specs(cfg.bitrix.blocks)))
