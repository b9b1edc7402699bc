"""Linking counterparties to Bitrix users: every strategy, their order, and the admin operations.

All on the suite's MariaDB, with b_user / b_uts_user / b_utm_user / b_user_field made as Bitrix
makes them (tests/bitrix_users.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from syncd.admin.links import (
    LinkError,
    add_link,
    conflicts,
    inn_checksum_ok,
    links_table,
    list_links,
    parse_key,
    refresh_links,
    remove_link,
    unmatched,
)
from syncd.bitrix.hlblock import ApplyOptions, apply_export
from syncd.bitrix.users import Strategy, load_linker, parse_strategy
from syncd.contract.records import Counterparty, Document, Header, Payment
from syncd.errors import SchemaError
from tests.bitrix_users import (
    LinkSite,
    guid,
    make_link_site,
    register_multiple_field,
    set_active,
    set_fields,
    set_multiple,
)

INN_A = "7707083893"  # valid control digit
INN_B = "500100732259"  # valid 12-digit


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> LinkSite:
    return make_link_site(db_url, tmp_path)


# ---------------------------------------------------------------- strategies


def test_user_field_matches_trimmed_case_insensitive_in_all_three_blocks(site: LinkSite) -> None:
    g = guid(1)
    u = site.user("buyer", fields={"UF_1C_CONTRACTOR_ID": f"  {g.upper()} \n"})
    site.counterparty(g, payments=2, documents=3)
    counts = refresh_links(site.engine, site.cfg)
    assert site.user_of(g) == u
    assert (counts.balance, counts.payments, counts.documents) == (1, 2, 3)
    assert (counts.counterparties, counts.linked) == (1, 1)
    again = refresh_links(site.engine, site.cfg)
    assert again.changed == 0  # nothing rewritten when nothing changed


def test_user_field_multiple_values_in_utm(site: LinkSite) -> None:
    site = site.with_link_by("user_field:UF_CONTRACTORS")
    with site.engine.begin() as conn:
        fid = register_multiple_field(conn, "UF_CONTRACTORS")
    u = site.user("holding")
    with site.engine.begin() as conn:
        set_multiple(conn, u, "UF_CONTRACTORS", fid, [guid(1).upper(), guid(2)])
    for n in (1, 2, 3):
        site.counterparty(guid(n))
    refresh_links(site.engine, site.cfg)
    assert [site.user_of(guid(n)) for n in (1, 2, 3)] == [u, u, None]


def test_multiple_field_serialized_copy_is_not_compared(site: LinkSite) -> None:
    site = site.with_link_by("user_field:UF_CONTRACTORS")
    with site.engine.begin() as conn:
        fid = register_multiple_field(conn, "UF_CONTRACTORS")
    u = site.user("one")
    with site.engine.begin() as conn:
        set_multiple(conn, u, "UF_CONTRACTORS", fid, [guid(1)])
        # The b_uts_user column holds a:1:{i:0;s:36:"…";}; a GUID equal to it must not match.
        serialized = conn.exec_driver_sql(f"SELECT UF_CONTRACTORS FROM b_uts_user WHERE VALUE_ID = {u}").scalar()
    assert str(serialized).startswith("a:1:{")
    site.counterparty(guid(1))
    refresh_links(site.engine, site.cfg)
    assert site.user_of(guid(1)) == u


def test_xml_id_case_insensitive(site: LinkSite) -> None:
    site = site.with_link_by("xml_id")
    u = site.user("imported", xml_id=guid(5).upper())
    site.counterparty(guid(5))
    site.counterparty(guid(6))
    refresh_links(site.engine, site.cfg)
    assert site.user_of(guid(5)) == u
    assert site.user_of(guid(6)) is None


def test_inn_several_users_lowest_id_and_conflict(site: LinkSite) -> None:
    site = site.with_link_by("inn:UF_INN")
    first = site.user("boss", fields={"UF_INN": INN_A})
    second = site.user("accountant", fields={"UF_INN": f" {INN_A[:4]} {INN_A[4:]} "})  # typed with spaces
    site.counterparty(guid(1), inn=INN_A, kpp="770701001")
    site.counterparty(guid(2), inn=INN_B)
    refresh_links(site.engine, site.cfg)
    assert site.user_of(guid(1)) == min(first, second)
    assert site.user_of(guid(2)) is None
    found = conflicts(site.engine, site.cfg)
    assert len(found) == 1
    c = found[0]
    assert (c.guid, c.user_id, c.kinds) == (guid(1), first, ("several users",))
    assert c.found == {"inn:UF_INN": [first, second]}


def test_inn_with_kpp_matches_branches(site: LinkSite) -> None:
    site = site.with_link_by("inn:UF_INN,kpp:UF_KPP")
    head = site.user("head", fields={"UF_INN": INN_A, "UF_KPP": "770701001"})
    branch = site.user("branch", fields={"UF_INN": INN_A, "UF_KPP": "781001001"})
    no_kpp = site.user("trader", fields={"UF_INN": INN_B})
    inn_only = site.user("lazy", fields={"UF_INN": INN_A})  # no KPP: must not see a branch's debts
    site.counterparty(guid(1), inn=INN_A, kpp="770701001")
    site.counterparty(guid(2), inn=INN_A, kpp="781001001")
    site.counterparty(guid(3), inn=INN_A, kpp="999901001")
    site.counterparty(guid(4), inn=INN_B)  # a sole trader has no KPP
    refresh_links(site.engine, site.cfg)
    assert [site.user_of(guid(n)) for n in (1, 2, 3, 4)] == [head, branch, None, no_kpp]
    assert inn_only not in {site.user_of(guid(n)) for n in (1, 2, 3, 4)}


def test_order_of_strategies_first_that_finds_wins(site: LinkSite) -> None:
    by_field = site.user("by_field", fields={"UF_1C_CONTRACTOR_ID": guid(1)})
    by_xml = site.user("by_xml", xml_id=guid(1))
    only_xml = site.user("only_xml", xml_id=guid(2))
    site.counterparty(guid(1))
    site.counterparty(guid(2))
    a = site.with_link_by("user_field:UF_1C_CONTRACTOR_ID", "xml_id")
    refresh_links(a.engine, a.cfg)
    assert (a.user_of(guid(1)), a.user_of(guid(2))) == (by_field, only_xml)
    [c] = conflicts(a.engine, a.cfg)
    assert c.kinds == ("strategies disagree",)
    assert c.found == {"user_field:UF_1C_CONTRACTOR_ID": [by_field], "xml_id": [by_xml]}
    b = site.with_link_by("xml_id", "user_field:UF_1C_CONTRACTOR_ID")
    refresh_links(b.engine, b.cfg)
    assert (b.user_of(guid(1)), b.user_of(guid(2))) == (by_xml, only_xml)


def test_later_strategy_finding_the_same_user_among_others_is_no_conflict(site: LinkSite) -> None:
    s = site.with_link_by("user_field:UF_1C_CONTRACTOR_ID", "inn:UF_INN")
    site.user("colleague", fields={"UF_INN": INN_A})
    buyer = site.user("buyer", fields={"UF_INN": INN_A, "UF_1C_CONTRACTOR_ID": guid(1)})
    site.counterparty(guid(1), inn=INN_A)
    refresh_links(s.engine, s.cfg)
    assert s.user_of(guid(1)) == buyer
    assert conflicts(s.engine, s.cfg) == []


def test_inactive_users_are_not_linked_and_deactivation_reaches_all_blocks(site: LinkSite) -> None:
    s = site.with_link_by("user_field:UF_1C_CONTRACTOR_ID", "xml_id")
    blocked = site.user("blocked", active=False, fields={"UF_1C_CONTRACTOR_ID": guid(1)})
    u = site.user("buyer", fields={"UF_1C_CONTRACTOR_ID": guid(2)})
    fallback = site.user("fallback", xml_id=guid(2))
    site.counterparty(guid(1))
    site.counterparty(guid(2), payments=3)
    refresh_links(s.engine, s.cfg)
    assert s.user_of(guid(1)) is None
    assert s.user_of(guid(2)) == u
    with site.engine.begin() as conn:
        set_active(conn, u, False)
    counts = refresh_links(s.engine, s.cfg)
    assert s.user_of(guid(2)) == fallback  # the next strategy takes over
    assert (counts.balance, counts.payments, counts.documents) == (1, 3, 1)
    with site.engine.begin() as conn:
        set_active(conn, fallback, False)
        set_active(conn, blocked, True)
    refresh_links(s.engine, s.cfg)
    assert (s.user_of(guid(1)), s.user_of(guid(2))) == (blocked, None)


def test_field_edited_moves_the_link_and_unlinked_rows_are_retried(site: LinkSite) -> None:
    site.counterparty(guid(1), user=None)
    refresh_links(site.engine, site.cfg)
    assert site.user_of(guid(1)) is None
    u = site.user("registered_today")  # registers without the field, fills it in later
    with site.engine.begin() as conn:
        set_fields(conn, u, {"UF_1C_CONTRACTOR_ID": guid(1)})
    refresh_links(site.engine, site.cfg)
    assert site.user_of(guid(1)) == u
    other = site.user("other")
    with site.engine.begin() as conn:
        set_fields(conn, u, {"UF_1C_CONTRACTOR_ID": ""})
        set_fields(conn, other, {"UF_1C_CONTRACTOR_ID": guid(1)})
    refresh_links(site.engine, site.cfg)
    assert site.user_of(guid(1)) == other


def test_writer_links_with_inn_and_kpp(site: LinkSite) -> None:
    s = site.with_link_by("inn:UF_INN,kpp:UF_KPP")
    u = site.user("branch", fields={"UF_INN": INN_A, "UF_KPP": "781001001"})
    cp = Counterparty(
        id=guid(9), debt=Decimal("10.00"), inn=INN_A, kpp="781001001", name="Филиал",
        payments=[Payment(guid(90), datetime(2026, 11, 1, 12, tzinfo=UTC), Decimal("5.00"))],
        documents=[Document(guid(91), datetime(2026, 10, 1).date(), Decimal("3.00"))],
    )
    header = Header(export_id="e1", generated_at=datetime(2026, 11, 25, 10, tzinfo=UTC))
    with s.engine.begin() as conn:
        linker = load_linker(conn, s.cfg.bitrix.link_by)
        apply_export(conn, s.blocks, header, [cp], linker, ApplyOptions(bitrix_tz=ZoneInfo("Europe/Moscow")))
    assert s.user_of(guid(9)) == u


# ---------------------------------------------------------------- refused configuration


@pytest.mark.parametrize(
    ("link_by", "name"),
    [
        (("user_field:UF_NO_SUCH",), "UF_NO_SUCH"),
        (("xml_id", "inn:UF_INN,kpp:UF_NO_KPP"), "UF_NO_KPP"),
        (("inn:UF_TAX_ID",), "UF_TAX_ID"),
    ],
)
def test_missing_configured_field_is_refused_with_its_name(site: LinkSite, link_by: tuple[str, ...], name: str) -> None:
    s = site.with_link_by(*link_by)
    with pytest.raises(SchemaError, match=name), s.engine.connect() as conn:
        load_linker(conn, s.cfg.bitrix.link_by)
    with pytest.raises(SchemaError, match=name):
        refresh_links(s.engine, s.cfg)


def test_field_registered_without_column_is_refused(site: LinkSite) -> None:
    site.sql("INSERT INTO b_user_field (ENTITY_ID, FIELD_NAME, USER_TYPE_ID) VALUES ('USER', 'UF_GHOST', 'string')")
    s = site.with_link_by("user_field:UF_GHOST")
    with pytest.raises(SchemaError, match="UF_GHOST"), s.engine.connect() as conn:
        load_linker(conn, s.cfg.bitrix.link_by)


def test_manual_without_links_table_is_refused(site: LinkSite) -> None:
    site.sql("DROP TABLE syncd_links")
    s = site.with_link_by("manual")
    with pytest.raises(SchemaError, match=r"syncd_links.*syncd migrate"):
        refresh_links(s.engine, s.cfg)


def test_parse_strategy() -> None:
    assert parse_strategy("inn:UF_INN,kpp:UF_KPP") == Strategy("inn", "UF_INN", "UF_KPP")
    assert parse_strategy("user_field:UF_X").name == "user_field:UF_X"
    with pytest.raises(SchemaError, match="not a link strategy"):
        parse_strategy("inn:UF_INN,kpp:")


# ---------------------------------------------------------------- manual links


def _links(site: LinkSite) -> list[tuple[str, str, int]]:
    t = links_table
    with site.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(t.c.key_kind, t.c.key_value, t.c.user_id))]  # type: ignore[misc]


def test_manual_link_overrides_other_strategies_and_reaches_all_blocks(site: LinkSite) -> None:
    s = site.with_link_by("manual", "user_field:UF_1C_CONTRACTOR_ID")
    wrong = site.user("wrong", fields={"UF_1C_CONTRACTOR_ID": guid(1)})
    right = site.user("right")
    site.counterparty(guid(1), payments=2)
    refresh_links(s.engine, s.cfg)
    assert s.user_of(guid(1)) == wrong
    change = add_link(s.engine, s.cfg, guid(1).upper(), "right", comment="ticket 42")
    assert change.action == "added"
    assert change.refresh is not None and change.refresh.payments == 2
    assert s.user_of(guid(1)) == right  # applied at once, no refresh needed
    assert _links(s) == [("guid", guid(1), right)]
    assert conflicts(s.engine, s.cfg) == []  # the manual link settles it
    removed = remove_link(s.engine, s.cfg, guid(1))
    assert removed.previous_user_id == right
    assert s.user_of(guid(1)) == wrong
    assert _links(s) == []


def test_manual_link_by_inn_covers_the_company_and_guid_link_is_more_specific(site: LinkSite) -> None:
    s = site.with_link_by("manual")
    company = site.user("company", email="Boss@Example.com")
    branch = site.user("branch_manager")
    site.counterparty(guid(1), inn=INN_A, kpp="770701001")
    site.counterparty(guid(2), inn=INN_A, kpp="781001001")
    site.counterparty(guid(3), inn=INN_B)
    add_link(s.engine, s.cfg, f"{INN_A[:5]} {INN_A[5:]}", "boss@example.com")
    add_link(s.engine, s.cfg, guid(2), str(branch))
    assert [s.user_of(guid(n)) for n in (1, 2, 3)] == [company, branch, None]
    rows = list_links(s.engine, s.cfg)
    assert [(r.key_kind, r.key, r.user_id, r.counterparties, r.user_state) for r in rows] == [
        ("guid", guid(2), branch, 1, "active"),
        ("inn", INN_A, company, 2, "active"),
    ]
    assert rows[0].created_by and "@" in rows[0].created_by


def test_manual_link_to_a_user_deactivated_later_stops_linking(site: LinkSite) -> None:
    s = site.with_link_by("manual")
    u = site.user("buyer")
    site.counterparty(guid(1))
    add_link(s.engine, s.cfg, guid(1), str(u))
    with site.engine.begin() as conn:
        set_active(conn, u, False)
    refresh_links(s.engine, s.cfg)
    assert s.user_of(guid(1)) is None
    assert list_links(s.engine, s.cfg)[0].user_state == "inactive"


def test_add_replace_and_unchanged(site: LinkSite) -> None:
    s = site.with_link_by("manual")
    a, b = site.user("a"), site.user("b")
    site.counterparty(guid(1))
    add_link(s.engine, s.cfg, guid(1), "a")
    assert add_link(s.engine, s.cfg, guid(1), "a").action == "unchanged"
    with pytest.raises(LinkError, match="already linked to user"):
        add_link(s.engine, s.cfg, guid(1), "b")
    assert s.user_of(guid(1)) == a
    change = add_link(s.engine, s.cfg, guid(1), "b", replace=True)
    assert (change.action, change.previous_user_id) == ("replaced", a)
    assert s.user_of(guid(1)) == b


@pytest.mark.parametrize(
    ("key", "user", "message"),
    [
        ("not-a-guid", "a", "neither a counterparty GUID"),
        ("0000000-0000-4000-8000-000000000001", "a", "neither a counterparty GUID"),
        ("123456789", "a", "neither a counterparty GUID"),
        (guid(1), "nobody", "no Bitrix user with ID, login or e-mail 'nobody'"),
        (guid(1), "999999", "no Bitrix user"),
        (guid(1), "sleeping", "is not active"),
        (guid(1), "same@example.com", "2 Bitrix users match"),
        ("1234567890", "a", "wrong control digits"),
    ],
)
def test_wrong_input_changes_nothing(site: LinkSite, key: str, user: str, message: str) -> None:
    s = site.with_link_by("manual")
    site.user("a")
    site.user("sleeping", active=False)
    site.user("twin1", email="same@example.com")
    site.user("twin2", email="same@example.com")
    site.counterparty(guid(1))
    before = s.users_of(guid(1))
    with pytest.raises(LinkError, match=message):
        add_link(s.engine, s.cfg, key, user)
    assert _links(s) == []
    assert s.users_of(guid(1)) == before


def test_remove_missing_link_is_an_error(site: LinkSite) -> None:
    with pytest.raises(LinkError, match="no manual link"):
        remove_link(site.engine, site.cfg, guid(1))


def test_add_warns_when_manual_is_not_configured_or_loses(site: LinkSite) -> None:
    u = site.user("u")
    site.counterparty(guid(1))
    change = add_link(site.engine, site.cfg, guid(1), "u")  # link_by lacks "manual"
    assert any('does not list "manual"' in w for w in change.warnings)
    assert site.user_of(guid(1)) is None
    s = site.with_link_by("user_field:UF_1C_CONTRACTOR_ID", "manual")
    site.user("field_user", fields={"UF_1C_CONTRACTOR_ID": guid(1)})
    change = add_link(s.engine, s.cfg, guid(1), "u", replace=True)
    assert change.action == "unchanged"
    remove_link(s.engine, s.cfg, guid(1))
    change = add_link(s.engine, s.cfg, guid(1), str(u))
    assert any('put "manual" first' in w for w in change.warnings)


def test_parse_key_and_inn_checksum() -> None:
    assert parse_key("{" + guid(1).upper() + "}") == ("guid", guid(1))
    assert parse_key(" 7707 083893 ") == ("inn", INN_A)
    assert inn_checksum_ok(INN_A) and inn_checksum_ok(INN_B)
    assert not inn_checksum_ok("7707083894")


# ---------------------------------------------------------------- unmatched


def test_unmatched_lists_debtors_without_user_largest_debt_first(site: LinkSite) -> None:
    u = site.user("linked", fields={"UF_1C_CONTRACTOR_ID": guid(1)})
    site.counterparty(guid(1), debt=900.0)  # linked after refresh
    site.counterparty(guid(2), debt=50.0, inn=INN_A, name="ООО Малый")
    site.counterparty(guid(3), debt=700.0, inn=INN_B, name="ИП Большой")
    site.counterparty(guid(4), debt=0.0)  # owes nothing
    site.counterparty(guid(5), debt=0.0, overdue=20.0)  # overdue only still counts
    refresh_links(site.engine, site.cfg)
    assert site.user_of(guid(1)) == u
    rows = unmatched(site.engine, site.cfg)
    assert [(r.guid, r.inn, r.name, r.debt) for r in rows] == [
        (guid(3), INN_B, "ИП Большой", 700.0),
        (guid(2), INN_A, "ООО Малый", 50.0),
        (guid(5), None, f"ООО {guid(5)[:8]}", 0.0),
    ]
    assert [r.guid for r in unmatched(site.engine, site.cfg, limit=1)] == [guid(3)]


def test_rows_out_of_step_and_payments_without_balance_row_are_fixed(site: LinkSite) -> None:
    u = site.user("buyer", fields={"UF_1C_CONTRACTOR_ID": guid(1)})
    v = site.user("other", fields={"UF_1C_CONTRACTOR_ID": guid(2)})
    site.counterparty(guid(1), user=u, payments=2)
    site.sql(f"UPDATE contractor_payments SET UF_BITRIX_USER_ID = {v} WHERE UF_SUM = 10")  # out of step
    # on_missing = delete removes balance and documents rows but keeps the payment history.
    site.counterparty(guid(2), payments=1, documents=0)
    site.sql(f"DELETE FROM contractor_balance WHERE UF_CONTRACTOR_XML_ID = '{guid(2)}'")
    counts = refresh_links(site.engine, site.cfg)
    assert (counts.balance, counts.payments, counts.documents) == (0, 3, 0)
    assert site.users_of(guid(1)) == ({u}, {u}, {u})
    assert site.users_of(guid(2)) == (set(), {v}, set())


def test_refresh_rolls_back_when_before_commit_refuses(site: LinkSite) -> None:
    site.user("buyer", fields={"UF_1C_CONTRACTOR_ID": guid(1)})
    site.counterparty(guid(1))

    def lost_lock() -> None:
        raise RuntimeError("lock lost")

    with pytest.raises(RuntimeError, match="lock lost"):
        refresh_links(site.engine, site.cfg, before_commit=lost_lock)
    assert site.user_of(guid(1)) is None
