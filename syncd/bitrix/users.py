"""Which Bitrix user is which 1C counterparty.

`bitrix.link_by` lists strategies; the first that finds an active user wins:

    manual                      links an admin made with `syncd links add` (table syncd_links)
    user_field:UF_X             the user whose field UF_X holds the counterparty GUID
    xml_id                      the user whose b_user.XML_ID is the counterparty GUID
    inn:UF_X[,kpp:UF_Y]         the users whose field UF_X holds the counterparty's INN (and UF_Y its KPP)

Links are resolved set-based: each strategy loads its whole mapping with one query per field it
reads, so linking an export of any size costs a fixed handful of queries, never one per
counterparty. Resolving is then dictionary lookups in memory.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Connection, column, inspect, select, table

from syncd.bitrix import core
from syncd.errors import SchemaError

_FIELD = re.compile(r"^UF_[A-Z0-9_]+$")
_SPACE = re.compile(r"\s+")

LINKS_TABLE = "syncd_links"

Kind = Literal["manual", "user_field", "xml_id", "inn"]


# ---------------------------------------------------------------- normalising keys


def guid_key(value: object) -> str:
    """A GUID as compared: trimmed, braces dropped, lower case (1C writes upper, sites store either)."""
    return str(value).strip().strip("{}").strip().lower()


def code_key(value: object | None) -> str:
    """An INN or KPP as compared: without any whitespace (people type "77 01 234567")."""
    if type(value) is str and value.isdigit():  # as 1C writes them: nothing to take out, no regex
        return value
    return "" if value is None else _SPACE.sub("", str(value))


# ---------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Strategy:
    """One parsed entry of bitrix.link_by."""

    kind: Kind
    field: str | None = None  # user_field: the GUID field; inn: the INN field
    kpp_field: str | None = None  # inn only, optional

    @property
    def name(self) -> str:
        if self.kind == "user_field":
            return f"user_field:{self.field}"
        if self.kind == "inn":
            return f"inn:{self.field}" + (f",kpp:{self.kpp_field}" if self.kpp_field else "")
        return self.kind

    def fields(self) -> list[str]:
        return [f for f in (self.field, self.kpp_field) if f]


def parse_strategy(text: str) -> Strategy:
    """Parse one link_by entry (config.py has validated its shape; this repeats it for direct callers)."""
    kind, _, arg = text.strip().partition(":")
    if kind in ("manual", "xml_id") and not arg:
        return Strategy(kind)  # type: ignore[arg-type]
    if kind == "user_field" and _FIELD.match(arg):
        return Strategy("user_field", arg)
    if kind == "inn":
        inn_field, _, rest = arg.partition(",")
        kpp_field = rest[len("kpp:"):] if rest.startswith("kpp:") else None
        if _FIELD.match(inn_field) and (not rest or (kpp_field and _FIELD.match(kpp_field))):
            return Strategy("inn", inn_field, kpp_field)
    raise SchemaError(
        f"bitrix.link_by: {text!r} is not a link strategy (expected manual, xml_id, user_field:UF_FIELD, "
        "inn:UF_FIELD or inn:UF_FIELD,kpp:UF_FIELD)"
    )


# ---------------------------------------------------------------- result of resolving


@dataclass(frozen=True)
class Found:
    """The active users one strategy found for a counterparty, lowest ID first."""

    strategy: str
    users: tuple[int, ...]


@dataclass(frozen=True)
class Resolution:
    """Every strategy's answer for one counterparty, and which user is stored."""

    user_id: int | None
    strategy: str | None  # the strategy that decided, None when nobody was found
    found: tuple[Found, ...]  # strategies that found somebody, in link_by order

    @property
    def several(self) -> bool:
        """The deciding strategy matched more than one user: the lowest ID was stored."""
        return bool(self.found) and len(self.found[0].users) > 1

    @property
    def disagree(self) -> bool:
        """A later strategy found only other users than the stored one.

        A later strategy that also found the stored user agrees, even if it found colleagues too
        (inn: finds a whole company; the GUID field picked one of its employees).
        """
        return any(self.user_id not in f.users for f in self.found[1:])

    @property
    def conflict(self) -> bool:
        # A manual link is the admin's decision; it settles whatever the other strategies say.
        return self.strategy != "manual" and (self.several or self.disagree)


# ---------------------------------------------------------------- the linker


_Index = dict[str, tuple[int, ...]]


@dataclass
class _Loaded:
    strategy: Strategy
    by_guid: _Index = field(default_factory=dict)  # manual (GUID links), user_field, xml_id
    by_inn: _Index = field(default_factory=dict)  # manual (INN links), inn without kpp
    by_inn_kpp: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)

    def find(self, guid: str, inn: str, kpp: str) -> tuple[int, ...]:
        kind = self.strategy.kind
        if kind == "manual":
            # A link made for this very counterparty beats one made for its whole company (INN).
            return self.by_guid.get(guid) or (self.by_inn.get(inn, ()) if inn else ())
        if kind == "inn":
            if not inn:
                return ()
            if self.strategy.kpp_field:
                return self.by_inn_kpp.get((inn, kpp), ())
            return self.by_inn.get(inn, ())
        return self.by_guid.get(guid, ())


@dataclass
class Linker:
    """Maps a counterparty (GUID, INN, KPP) to an active user id, trying strategies in order.

    Loaded once per export with `load_linker`; lookups are in memory.
    """

    strategies: list[_Loaded] = field(default_factory=list)

    def user_for(self, guid: str, inn: str | None = None, kpp: str | None = None) -> int | None:
        """The user to store: the lowest ID the first successful strategy found, or None."""
        g, i, k = guid_key(guid), code_key(inn), code_key(kpp)
        for s in self.strategies:
            users = s.find(g, i, k)
            if users:
                return users[0]
        return None

    def resolve(self, guid: str, inn: str | None = None, kpp: str | None = None) -> Resolution:
        """Every strategy's answer, for reporting conflicts; `user_id` equals `user_for`."""
        g, i, k = guid_key(guid), code_key(inn), code_key(kpp)
        found = tuple(Found(s.strategy.name, users) for s in self.strategies if (users := s.find(g, i, k)))
        if not found:
            return Resolution(None, None, ())
        return Resolution(found[0].users[0], found[0].strategy, found)

    @property
    def names(self) -> list[str]:
        return [s.strategy.name for s in self.strategies]

    def fingerprint(self) -> str:
        """A digest of every mapping: equal fingerprints mean every row would get the same user."""
        h = hashlib.sha256()
        for s in self.strategies:
            h.update(s.strategy.name.encode())
            for index in (s.by_guid, s.by_inn, s.by_inn_kpp):
                for key, users in sorted(index.items()):
                    h.update(f"{key}={users};".encode())
                h.update(b"|")
        return h.hexdigest()


def _index(pairs: Iterable[tuple[str, int]]) -> _Index:
    """key → distinct user ids in ascending order (so [0] is the lowest, the one stored)."""
    acc: dict[str, set[int]] = defaultdict(set)
    for key, user_id in pairs:
        if key:
            acc[key].add(int(user_id))
    return {k: tuple(sorted(v)) for k, v in acc.items()}


# ---------------------------------------------------------------- reading user fields


@dataclass(frozen=True)
class _FieldInfo:
    name: str
    id: int
    multiple: bool


def _user_field_info(conn: Connection, name: str) -> _FieldInfo:
    """The USER field NAME as Bitrix registered it; SchemaError naming it if it is not usable."""
    insp = inspect(conn)
    if not insp.has_table("b_user_field") or not insp.has_table("b_user"):
        raise SchemaError(f"bitrix.link_by needs {name}, but this database has no b_user/b_user_field: "
                          "is database.url pointing at the Bitrix database?")
    uf = core.user_field
    row = conn.execute(
        select(uf.c.ID, uf.c.MULTIPLE).where(uf.c.ENTITY_ID == "USER", uf.c.FIELD_NAME == name)
    ).first()
    if row is None:
        raise SchemaError(
            f"bitrix.link_by: user field {name} does not exist (no USER field of that name in b_user_field); "
            "create it in the Bitrix admin (Settings → User settings → User fields) or change bitrix.link_by"
        )
    info = _FieldInfo(name, int(row[0]), str(row[1] or "N").upper() == "Y")
    if info.multiple:
        if not insp.has_table("b_utm_user"):
            raise SchemaError(f"bitrix.link_by: user field {name} is multiple but b_utm_user does not exist")
    else:
        columns = {c["name"].upper() for c in insp.get_columns("b_uts_user")} if insp.has_table("b_uts_user") else set()
        if name not in columns:
            raise SchemaError(
                f"bitrix.link_by: user field {name} is registered but b_uts_user has no {name} column; "
                "re-save the field in the Bitrix admin or change bitrix.link_by"
            )
    return info


def _field_values(conn: Connection, info: _FieldInfo) -> list[tuple[int, str]]:
    """(user id, value) for every active user with a non-empty value in the field: one query.

    A single field is a b_uts_user column (users who never saved a field have no row there, so the
    join simply skips them); a MULTIPLE field keeps one b_utm_user row per value, and its b_uts_user
    column only holds a serialized copy that must not be compared.
    """
    u = core.user
    if info.multiple:
        m = core.utm_user
        q = (
            select(u.c.ID, m.c.VALUE)
            .join(m, m.c.VALUE_ID == u.c.ID)
            .where(u.c.ACTIVE == "Y", m.c.FIELD_ID == info.id, m.c.VALUE.is_not(None), m.c.VALUE != "")
        )
    else:
        uts = table("b_uts_user", column("VALUE_ID"), column(info.name))
        value = uts.c[info.name]
        q = (
            select(u.c.ID, value)
            .join(uts, uts.c.VALUE_ID == u.c.ID)
            .where(u.c.ACTIVE == "Y", value.is_not(None), value != "")
        )
    return [(int(uid), str(v)) for uid, v in conn.execute(q)]


def check_link_by(conn: Connection, link_by: Sequence[str]) -> list[Strategy]:
    """Parse link_by and check every field and table it needs exists; SchemaError naming what is missing.

    Cheap (no user data is read): the runner can call it before fetching anything.
    """
    strategies = [parse_strategy(s) for s in link_by]
    for s in strategies:
        for name in s.fields():
            _user_field_info(conn, name)
        if s.kind == "manual" and not inspect(conn).has_table(LINKS_TABLE):
            raise SchemaError(f"bitrix.link_by has \"manual\" but the {LINKS_TABLE} table does not exist: "
                              "run `syncd migrate`")
    return strategies


# ---------------------------------------------------------------- loading


def _load_manual(conn: Connection, s: _Loaded) -> None:
    u = core.user
    links = table(LINKS_TABLE, column("key_kind"), column("key_value"), column("user_id"))
    q = select(links.c.key_kind, links.c.key_value, u.c.ID).join(u, u.c.ID == links.c.user_id).where(u.c.ACTIVE == "Y")
    guids: list[tuple[str, int]] = []
    inns: list[tuple[str, int]] = []
    for kind, key, user_id in conn.execute(q):
        (guids if kind == "guid" else inns).append((guid_key(key) if kind == "guid" else code_key(key), user_id))
    s.by_guid, s.by_inn = _index(guids), _index(inns)


def _load_xml_id(conn: Connection, s: _Loaded) -> None:
    u = core.user
    q = select(u.c.XML_ID, u.c.ID).where(u.c.ACTIVE == "Y", u.c.XML_ID.is_not(None), u.c.XML_ID != "")
    s.by_guid = _index((guid_key(x), uid) for x, uid in conn.execute(q))


def _load_inn(conn: Connection, s: _Loaded, inn: _FieldInfo, kpp: _FieldInfo | None) -> None:
    inn_values = [(code_key(v), uid) for uid, v in _field_values(conn, inn)]
    if kpp is None:
        s.by_inn = _index(inn_values)
        return
    kpps: dict[int, set[str]] = defaultdict(set)
    for uid, v in _field_values(conn, kpp):
        kpps[uid].add(code_key(v))
    acc: dict[tuple[str, str], set[int]] = defaultdict(set)
    for key, uid in inn_values:
        # A user without a KPP matches only counterparties without one (sole traders): a branch's
        # debts must not reach a user who merely shares the company's INN.
        for k in kpps.get(uid) or {""}:
            acc[(key, k)].add(uid)
    s.by_inn_kpp = {k: tuple(sorted(v)) for k, v in acc.items() if k[0]}


def load_linker(conn: Connection, link_by: Sequence[str]) -> Linker:
    """Check link_by against the database and load every strategy's whole mapping.

    Raises SchemaError naming a configured field (or syncd_links) that does not exist.
    """
    linker = Linker()
    for strategy in check_link_by(conn, link_by):
        loaded = _Loaded(strategy)
        if strategy.kind == "manual":
            _load_manual(conn, loaded)
        elif strategy.kind == "xml_id":
            _load_xml_id(conn, loaded)
        elif strategy.kind == "user_field":
            assert strategy.field is not None
            info = _user_field_info(conn, strategy.field)
            loaded.by_guid = _index((guid_key(v), uid) for uid, v in _field_values(conn, info))
        else:
            assert strategy.field is not None
            kpp = _user_field_info(conn, strategy.kpp_field) if strategy.kpp_field else None
            _load_inn(conn, loaded, _user_field_info(conn, strategy.field), kpp)
        linker.strategies.append(loaded)
    return linker


def linker_from(mapping: Mapping[str, int]) -> Linker:
    """A linker that knows only GUID → user (for tests and callers that have their own mapping)."""
    loaded = _Loaded(Strategy("manual"), by_guid={guid_key(k): (v,) for k, v in mapping.items()})
    return Linker([loaded])
