"""Admin operations on counterparty-to-user links: manual links, refresh, unmatched, conflicts.

Manual links live in syncd_links (revision 0002) and are used by the `manual` strategy in
bitrix.link_by. Every operation runs in one transaction: wrong input (no such user, inactive
user, malformed GUID) raises LinkError before anything is written, and a link added or removed
is applied to all three blocks in the same transaction, so the site never shows half of it.
"""

from __future__ import annotations

import getpass
import re
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    or_,
    select,
)
from sqlalchemy.exc import OperationalError

from syncd import ledger
from syncd.bitrix import core
from syncd.bitrix.hlblock import Blocks
from syncd.bitrix.linking import RefreshCounts, blocks_of, refresh_rows, require_tables
from syncd.bitrix.linking import refresh_links as refresh_links  # `syncd links refresh`
from syncd.bitrix.users import LINKS_TABLE, Linker, code_key, guid_key, load_linker, parse_strategy
from syncd.config import Config
from syncd.errors import DatabaseError, SyncdError
from syncd.plumbing.db import make_engine, safe_url

KeyKind = Literal["guid", "inn"]

metadata = MetaData()

# Must match migrations/versions/0002_links.py.
links_table = Table(
    LINKS_TABLE,
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("key_kind", String(4), nullable=False),
    Column("key_value", String(36), nullable=False),
    Column("user_id", Integer, nullable=False, index=True),
    Column("created_at", DateTime, nullable=False),  # UTC
    Column("created_by", String(255), nullable=True),
    Column("comment", Text, nullable=True),
    UniqueConstraint("key_kind", "key_value", name="ux_syncd_links_key"),
)

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_INN = re.compile(r"^(?:[0-9]{10}|[0-9]{12})$")


class LinkError(SyncdError):
    """The admin's input is wrong (no such user, inactive user, malformed key…); nothing was changed."""


# ---------------------------------------------------------------- input


def inn_checksum_ok(inn: str) -> bool:
    """The control digits of a Russian INN (10 digits: companies, 12: individuals)."""

    def digit(coeffs: Sequence[int], digits: str) -> int:
        return sum(c * int(d) for c, d in zip(coeffs, digits, strict=False)) % 11 % 10

    if len(inn) == 10:
        return digit((2, 4, 10, 3, 5, 9, 4, 6, 8), inn) == int(inn[9])
    if len(inn) == 12:
        return digit((7, 2, 4, 10, 3, 5, 9, 4, 6, 8), inn) == int(inn[10]) and digit(
            (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8), inn
        ) == int(inn[11])
    return False


def parse_key(text: str) -> tuple[KeyKind, str]:
    """A counterparty GUID (any case, braces allowed) or an INN (10 or 12 digits, spaces allowed), normalised."""
    g = guid_key(text)
    if _GUID.match(g):
        return "guid", g
    inn = code_key(text)
    if _INN.match(inn):
        return "inn", inn
    raise LinkError(
        f"{text!r} is neither a counterparty GUID (32 hex digits as 8-4-4-4-12, "
        "e.g. 0f8fad5b-d9cb-469f-a165-70867728950e) nor an INN (10 or 12 digits)"
    )


@dataclass(frozen=True)
class UserInfo:
    id: int
    login: str
    email: str | None
    name: str
    active: bool

    def label(self) -> str:
        return f"{self.id} ({self.login}{', ' + self.email if self.email else ''})"


def _user_info(row: Any) -> UserInfo:
    name = " ".join(p for p in (row.NAME, row.LAST_NAME) if p)
    return UserInfo(int(row.ID), row.LOGIN, row.EMAIL, name, row.ACTIVE == "Y")


def find_user(conn: Connection, ref: str) -> UserInfo:
    """The active Bitrix user REF names: an ID, else a login, else an e-mail. LinkError otherwise."""
    ref = ref.strip()
    if not ref:
        raise LinkError("no user given (expected a user ID, login or e-mail)")
    u = core.user
    cols = select(u.c.ID, u.c.LOGIN, u.c.EMAIL, u.c.NAME, u.c.LAST_NAME, u.c.ACTIVE)
    rows: list[Any] = []
    if ref.isascii() and ref.isdigit():
        rows = list(conn.execute(cols.where(u.c.ID == int(ref))))
    if not rows:
        rows = list(conn.execute(cols.where(u.c.LOGIN == ref).order_by(u.c.ID)))
    if not rows and "@" in ref:
        rows = list(conn.execute(cols.where(func.lower(u.c.EMAIL) == ref.lower()).order_by(u.c.ID)))
    if not rows:
        raise LinkError(f"no Bitrix user with ID, login or e-mail {ref!r}")
    if len(rows) > 1:
        ids = ", ".join(str(r.ID) for r in rows)
        raise LinkError(f"{len(rows)} Bitrix users match {ref!r} (IDs {ids}): give the user ID instead")
    user = _user_info(rows[0])
    if not user.active:
        raise LinkError(
            f"user {user.label()} is not active (ACTIVE = 'N'): syncd links only active users; "
            "activate the user in the Bitrix admin first or choose another user"
        )
    return user


def _default_author() -> str:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return f"{who}@{socket.gethostname()}"


# ---------------------------------------------------------------- plumbing


def _manual_configured(cfg: Config) -> bool:
    return any(parse_strategy(s).kind == "manual" for s in cfg.bitrix.link_by)


# ---------------------------------------------------------------- add / remove / list


@dataclass(frozen=True)
class CounterpartyInfo:
    guid: str
    inn: str | None
    kpp: str | None
    name: str | None
    user_id: int | None


def _covered(conn: Connection, blocks: Blocks, kind: KeyKind, value: str) -> list[CounterpartyInfo]:
    """The counterparties in the balance block a link with this key covers."""
    bal = blocks.balance
    q = select(bal.c.UF_CONTRACTOR_XML_ID, bal.c.UF_INN, bal.c.UF_KPP, bal.c.UF_NAME, bal.c.UF_BITRIX_USER_ID)
    # Both sides are normalised in Python too: the stored GUID's case and the INN's spaces vary.
    if kind == "guid":
        q = q.where(func.lower(func.trim(bal.c.UF_CONTRACTOR_XML_ID)) == value)
    else:
        q = q.where(func.replace(bal.c.UF_INN, " ", "") == value)
    return [CounterpartyInfo(*r) for r in conn.execute(q.order_by(bal.c.UF_CONTRACTOR_XML_ID))]


@dataclass
class LinkChange:
    """What `add_link` / `remove_link` did."""

    action: Literal["added", "replaced", "unchanged", "removed"]
    key_kind: KeyKind
    key: str
    user: UserInfo | None  # the user linked now (add) or before (remove)
    previous_user_id: int | None = None
    counterparties: list[CounterpartyInfo] = field(default_factory=list)  # covered, after refresh
    refresh: RefreshCounts | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "key_kind": self.key_kind,
            "key": self.key,
            "user": None if self.user is None else self.user.__dict__,
            "previous_user_id": self.previous_user_id,
            "counterparties": [c.__dict__ for c in self.counterparties],
            "refresh": None if self.refresh is None else self.refresh.as_dict(),
            "warnings": self.warnings,
        }


def _existing(conn: Connection, kind: KeyKind, value: str) -> Any:
    t = links_table
    return conn.execute(select(t).where(t.c.key_kind == kind, t.c.key_value == value)).first()


def _warnings(cfg: Config, change: LinkChange, linker_user: int | None) -> None:
    if not _manual_configured(cfg):
        change.warnings.append(
            'bitrix.link_by does not list "manual": manual links are kept but not used until you add it '
            '(e.g. link_by = ["manual", …])'
        )
        return
    if change.action in ("added", "replaced") and linker_user is not None:
        other = [c.guid for c in change.counterparties if c.user_id != linker_user]
        if other:
            change.warnings.append(
                f"{len(other)} covered counterparties are linked to another user by a strategy listed before "
                f'"manual" in bitrix.link_by (e.g. {other[0]}); put "manual" first for manual links to win'
            )
    if not change.counterparties:
        change.warnings.append(
            f"no counterparty with this {'GUID' if change.key_kind == 'guid' else 'INN'} in the balance block yet: "
            "the link applies when an export brings one"
        )


def add_link(
    engine: Engine,
    cfg: Config,
    key: str,
    user_ref: str,
    *,
    comment: str | None = None,
    created_by: str | None = None,
    replace: bool = False,
    refresh: bool = True,
) -> LinkChange:
    """Link a counterparty GUID, or every counterparty with an INN, to an active user.

    LinkError (nothing changed) for a malformed key, an unknown or inactive user, an INN with
    wrong control digits that no counterparty has, or a key already linked to another user
    without `replace`. With `refresh` the three blocks are updated in the same transaction.
    """
    kind, value = parse_key(key)
    blocks = blocks_of(cfg)
    with engine.begin() as conn:
        require_tables(conn, blocks, links=True)
        user = find_user(conn, user_ref)
        covered = _covered(conn, blocks, kind, value)
        if kind == "inn" and not covered and not inn_checksum_ok(value):
            raise LinkError(f"INN {value} has wrong control digits and no counterparty has it: a typo?")
        prior = _existing(conn, kind, value)
        t = links_table
        if prior is not None and int(prior.user_id) == user.id:
            change = LinkChange("unchanged", kind, value, user, user.id)
        elif prior is not None and not replace:
            raise LinkError(
                f"{kind.upper()} {value} is already linked to user {prior.user_id}: "
                "use --replace to link it to another user, or `syncd links remove` first"
            )
        else:
            values = {
                "user_id": user.id,
                "created_at": ledger.utcnow(),
                "created_by": created_by or _default_author(),
                "comment": comment,
            }
            if prior is None:
                conn.execute(t.insert().values(key_kind=kind, key_value=value, **values))
                change = LinkChange("added", kind, value, user)
            else:
                conn.execute(t.update().where(t.c.id == prior.id).values(**values))
                change = LinkChange("replaced", kind, value, user, int(prior.user_id))
        if refresh and change.action != "unchanged":
            change.refresh = refresh_rows(conn, cfg, blocks)
        change.counterparties = _covered(conn, blocks, kind, value)
        _warnings(cfg, change, user.id if refresh else None)
    return change


def remove_link(engine: Engine, cfg: Config, key: str, *, refresh: bool = True) -> LinkChange:
    """Remove the manual link of a GUID or INN; LinkError if there is none."""
    kind, value = parse_key(key)
    blocks = blocks_of(cfg)
    with engine.begin() as conn:
        require_tables(conn, blocks, links=True)
        prior = _existing(conn, kind, value)
        if prior is None:
            raise LinkError(f"there is no manual link for {kind.upper()} {value} (see `syncd links list`)")
        conn.execute(links_table.delete().where(links_table.c.id == prior.id))
        change = LinkChange("removed", kind, value, None, int(prior.user_id))
        if refresh:
            change.refresh = refresh_rows(conn, cfg, blocks)
        change.counterparties = _covered(conn, blocks, kind, value)
        _warnings(cfg, change, None)
    return change


@dataclass(frozen=True)
class LinkRow:
    key_kind: str
    key: str
    user_id: int
    login: str | None
    email: str | None
    user_state: Literal["active", "inactive", "deleted"]
    counterparties: int  # in the balance block
    counterparty_name: str | None  # the first one's
    created_at: datetime
    created_by: str | None
    comment: str | None


def list_links(engine: Engine, cfg: Config) -> list[LinkRow]:
    """Every manual link with its user's state and the counterparties it covers."""
    blocks = blocks_of(cfg)
    t, u, bal = links_table, core.user, blocks.balance
    with engine.connect() as conn:
        require_tables(conn, blocks, links=True)
        q = (
            select(t, u.c.LOGIN, u.c.EMAIL, u.c.ACTIVE)
            .outerjoin(u, u.c.ID == t.c.user_id)
            .order_by(t.c.key_kind, t.c.key_value)
        )
        links = list(conn.execute(q))
        by_guid: dict[str, list[str]] = {}
        by_inn: dict[str, list[str]] = {}
        guids = [r.key_value for r in links if r.key_kind == "guid"]
        inns = [r.key_value for r in links if r.key_kind == "inn"]
        if guids or inns:
            # One query for all links, not one per link; the balance block is indexed on the GUID.
            cond = []
            if guids:
                cond.append(bal.c.UF_CONTRACTOR_XML_ID.in_(guids))
            if inns:
                cond.append(bal.c.UF_INN.in_(inns))
            q2 = select(bal.c.UF_CONTRACTOR_XML_ID, bal.c.UF_INN, bal.c.UF_NAME).where(or_(*cond))
            for guid, inn, name in conn.execute(q2.order_by(bal.c.UF_CONTRACTOR_XML_ID)):
                by_guid.setdefault(guid_key(guid), []).append(name or "")
                if inn:
                    by_inn.setdefault(code_key(inn), []).append(name or "")
    rows = []
    for r in links:
        names = (by_guid if r.key_kind == "guid" else by_inn).get(r.key_value, [])
        state: Literal["active", "inactive", "deleted"] = (
            "deleted" if r.LOGIN is None else "active" if r.ACTIVE == "Y" else "inactive"
        )
        rows.append(
            LinkRow(r.key_kind, r.key_value, int(r.user_id), r.LOGIN, r.EMAIL, state, len(names),
                    names[0] if names else None, r.created_at, r.created_by, r.comment)
        )
    return rows


# ---------------------------------------------------------------- unmatched / conflicts


@dataclass(frozen=True)
class Unmatched:
    guid: str
    inn: str | None
    kpp: str | None
    name: str | None
    debt: float
    overdue_debt: float
    currency: str | None


def unmatched(engine: Engine, cfg: Config, *, limit: int | None = None) -> list[Unmatched]:
    """Counterparties that owe something and have no user (as the site shows them now), largest debt first."""
    blocks = blocks_of(cfg)
    bal = blocks.balance
    q = (
        select(bal.c.UF_CONTRACTOR_XML_ID, bal.c.UF_INN, bal.c.UF_KPP, bal.c.UF_NAME,
               bal.c.UF_DEBT, bal.c.UF_OVERDUE_DEBT, bal.c.UF_CURRENCY)
        .where(bal.c.UF_BITRIX_USER_ID.is_(None), or_(bal.c.UF_DEBT > 0, bal.c.UF_OVERDUE_DEBT > 0))
        .order_by(bal.c.UF_DEBT.desc(), bal.c.UF_OVERDUE_DEBT.desc(), bal.c.UF_CONTRACTOR_XML_ID)
    )
    if limit:
        q = q.limit(limit)
    with engine.connect() as conn:
        require_tables(conn, blocks, links=False)
        return [
            Unmatched(g, inn, kpp, name, float(debt or 0), float(overdue or 0), cur)
            for g, inn, kpp, name, debt, overdue, cur in conn.execute(q)
        ]


@dataclass(frozen=True)
class Conflict:
    guid: str
    inn: str | None
    kpp: str | None
    name: str | None
    user_id: int | None  # what the linker stores
    strategy: str | None  # which strategy decided
    kinds: tuple[str, ...]  # "several users" and/or "strategies disagree"
    found: dict[str, list[int]]  # every strategy that found someone → its users, lowest ID first

    def details(self) -> str:
        return "; ".join(f"{s} → {', '.join(map(str, users))}" for s, users in self.found.items())


def conflicts(engine: Engine, cfg: Config, *, linker: Linker | None = None) -> list[Conflict]:
    """Counterparties where several users match, or where strategies would link different users.

    A counterparty decided by a manual link is not reported: the link is the admin's answer.
    """
    blocks = blocks_of(cfg)
    bal = blocks.balance
    out: list[Conflict] = []
    with engine.connect() as conn:
        require_tables(conn, blocks, links=False)
        linker = linker or load_linker(conn, cfg.bitrix.link_by)
        q = select(bal.c.UF_CONTRACTOR_XML_ID, bal.c.UF_INN, bal.c.UF_KPP, bal.c.UF_NAME).order_by(
            bal.c.UF_CONTRACTOR_XML_ID
        )
        for guid, inn, kpp, name in conn.execute(q):
            r = linker.resolve(guid or "", inn, kpp)
            if not r.conflict:
                continue
            kinds = tuple(k for k, on in (("several users", r.several), ("strategies disagree", r.disagree)) if on)
            found = {f.strategy: list(f.users) for f in r.found}
            out.append(Conflict(guid, inn, kpp, name, r.user_id, r.strategy, kinds, found))
    return out


# ---------------------------------------------------------------- for the CLI


@contextmanager
def open_engine(cfg: Config) -> Iterator[Engine]:
    """An engine for one admin command; an unreachable database becomes DatabaseError (exit 7)."""
    engine = make_engine(cfg.database)
    try:
        yield engine
    except OperationalError as exc:
        orig = getattr(exc, "orig", None)
        reason = " ".join(str(a) for a in orig.args) if orig is not None and orig.args else exc.__class__.__name__
        raise DatabaseError(f"database {safe_url(engine)}: {reason}") from None
    finally:
        engine.dispose()


def _cell(value: object, width: int = 60) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}".replace(",", " ")
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    text_ = str(value).replace("\n", " ")
    return text_ if len(text_) <= width else text_[: width - 1] + "…"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table: a header, a rule, one line per row; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [bool(rows) and all(isinstance(r[i], int | float) for r in rows if r[i] is not None)
               for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def change_lines(change: LinkChange) -> list[str]:
    """What `links add` / `links remove` print."""
    what = f"{change.key_kind.upper()} {change.key}"
    names = [c.name or c.guid for c in change.counterparties]
    if names:
        what += f" ({names[0]}" + (f" and {len(names) - 1} more" if len(names) > 1 else "") + ")"
    if change.action == "unchanged":
        assert change.user is not None
        head = f"{what} is already linked to user {change.user.label()}: nothing changed"
    elif change.action == "removed":
        head = f"removed the manual link of {what} (was user {change.previous_user_id})"
    else:
        assert change.user is not None
        head = f"linked {what} to user {change.user.label()}"
        if change.action == "replaced":
            head += f" (was user {change.previous_user_id})"
    out = [head]
    if change.refresh is not None:
        r = change.refresh
        out.append(f"rows changed: balance {r.balance}, payments {r.payments}, documents {r.documents}")
    elif change.action != "unchanged":
        out.append("the blocks were not refreshed: run `syncd links refresh` (or wait for the next run)")
    return out
