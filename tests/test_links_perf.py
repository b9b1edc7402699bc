"""Linking is set-based: relinking 100,000 counterparties sends a handful of statements, not one per row.

Four strategies configured, 100,000 users, 100,000 counterparties with a payment and a document
each. Timings are printed (pytest -s) for the record; the test asserts the statement count, which
does not depend on how busy the machine is.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import insert

from syncd.admin.links import conflicts, links_table, refresh_links
from syncd.bitrix import core
from syncd.bitrix.users import load_linker
from tests.bitrix_users import LinkSite, _child, guid, make_link_site

N = 100_000
CHUNK = 5_000


@pytest.mark.slow
def test_relink_100k_counterparties_in_seconds(db_url: str, tmp_path: Path) -> None:
    site = make_link_site(
        db_url, tmp_path, link_by=("manual", "user_field:UF_1C_CONTRACTOR_ID", "xml_id", "inn:UF_INN")
    )
    b = site.blocks
    with site.engine.begin() as conn:
        for start in range(0, N, CHUNK):
            ns = range(start, min(start + CHUNK, N))
            conn.execute(insert(core.user), [
                {"ID": n + 1, "LOGIN": f"u{n}", "PASSWORD": "", "ACTIVE": "N" if n % 50 == 0 else "Y",
                 "DATE_REGISTER": "2026-01-01", "XML_ID": guid(n).upper() if n % 4 == 1 else None} for n in ns
            ])
            # Every other user saved the GUID field, every fourth only an INN; the rest match by XML_ID or not at all.
            conn.execute(core.uts_user_with(["UF_1C_CONTRACTOR_ID", "UF_INN"]).insert(), [
                {"VALUE_ID": n + 1, "UF_1C_CONTRACTOR_ID": guid(n) if n % 2 == 0 else None,
                 "UF_INN": f"{n:010d}" if n % 4 == 3 else None} for n in ns
            ])
            conn.execute(insert(b.balance), [
                {"UF_CONTRACTOR_XML_ID": guid(n), "UF_INN": f"{n:010d}", "UF_DEBT": float(n % 997)} for n in ns
            ])
            conn.execute(insert(b.payments), [
                {"UF_PAYMENT_XML_ID": _child(guid(n), "p", 0), "UF_CONTRACTOR_XML_ID": guid(n)} for n in ns
            ])
            conn.execute(insert(b.documents), [
                {"UF_DOCUMENT_XML_ID": _child(guid(n), "d", 0), "UF_CONTRACTOR_XML_ID": guid(n)} for n in ns
            ])
        conn.execute(insert(links_table), [
            {"key_kind": "guid", "key_value": guid(n), "user_id": n + 2, "created_at": "2026-11-25"}
            for n in range(0, N, 100)
        ])

    t0 = time.monotonic()
    with site.engine.connect() as conn:
        linker = load_linker(conn, site.cfg.bitrix.link_by)
    load_s = time.monotonic() - t0

    before = _questions(site)
    first = refresh_links(site.engine, site.cfg)
    first_statements = _questions(site) - before
    again = refresh_links(site.engine, site.cfg)
    t0 = time.monotonic()
    found = conflicts(site.engine, site.cfg, linker=linker)
    conflicts_s = time.monotonic() - t0

    print(
        f"\n{N} counterparties, {N} users, 4 strategies: load_linker {load_s:.2f}s; "
        f"first refresh {first.seconds:.2f}s ({first.changed} rows changed, {first.linked} linked); "
        f"{first_statements} statements; refresh with nothing to change {again.seconds:.2f}s; "
        f"conflicts {conflicts_s:.2f}s ({len(found)})"
    )
    assert first.counterparties == N
    assert first.balance == first.payments == first.documents == first.linked
    assert again.changed == 0
    # One statement per strategy and per chunk of changed rows; one per row would be 300,000.
    assert first_statements < 1_000, first_statements


def _questions(site: LinkSite) -> int:
    """Statements the server received so far (global: the suite's private server serves one test at a time)."""
    with site.engine.connect() as conn:
        return int(conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Questions'").one()[1])
