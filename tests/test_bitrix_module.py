"""The Bitrix side (contrib/bitrix/syncd.settlements): syncd writes the blocks, PHP reads them.

syncd migrates and fills a database (`run-once` on a sample export); then the module's PHP runs
against it: PHPUnit (tests/php) for each decision of the order rule, and the component served by
`php -S` and opened in headless Chromium at desktop and phone width. The Bitrix kernel is stood in
by tests/php/standins (only the classes the module calls); the database and everything under the
stand-ins are real.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import make_url

from syncd.bitrix import core
from syncd.config import DatabaseConfig
from syncd.plumbing.db import make_engine
from tests.exports import counterparty, guid, xml_export
from tests.site import Site, make_site

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "contrib" / "bitrix" / "syncd.settlements"
PHP_TESTS = ROOT / "tests" / "php"
ZONE = ZoneInfo("Europe/Moscow")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make system-deps` "
                    "(apt-get install php-cli php-mysql phpunit chromium)")
    return path


@dataclass
class Filled:
    site: Site
    users: dict[str, int]
    env: dict[str, str]
    now: datetime  # site time when the export was written


def _export(now: datetime, *, debt: str = "125000.00", hours_ago: int = 2) -> bytes:
    gen = now - timedelta(hours=hours_ago)
    today = now.date()
    day = timedelta(days=1)
    buyer = counterparty(1, name="ООО «Ромашка»", debt=debt, overdueDebt="25000.00", creditLimit="200000.00",
                         kpp="770101001", lastPayment={"date": (today - 5 * day).isoformat(), "sum": "15000.00"})
    buyer["payments"] = [
        {"id": guid(1000 + i, 1), "date": (gen - i * day).strftime("%Y-%m-%dT%H:%M:00"),
         "sum": f"{15000 - i * 1000}.00", "number": f"ПП-{100 + i}", "kind": "bank"}
        for i in range(3)
    ]
    buyer["openDocuments"] = [
        {"id": guid(1, 2), "kind": "invoice", "number": "СЧ-101", "date": (today - 60 * day).isoformat(),
         "dueDate": (today - 30 * day).isoformat(), "amount": "40000.00", "outstanding": "25000.00"},
        # one shipment paid in two stages: two lines, each with its due date
        {"id": guid(2, 2), "kind": "shipment", "number": "РН-202", "date": (today - 10 * day).isoformat(),
         "dueDate": (today + 40 * day).isoformat(), "amount": "100000.00", "outstanding": "50000.00"},
        {"id": guid(2, 2), "kind": "shipment", "number": "РН-202", "date": (today - 10 * day).isoformat(),
         "dueDate": (today + 10 * day).isoformat(), "amount": "100000.00", "outstanding": "50000.00"},
    ]
    cps = [
        buyer,
        counterparty(2, name="ООО «Лимит»", debt="90000.00", creditLimit="100000.00"),
        counterparty(3, name="ООО «Первое лицо»", debt="1000.00", payable="200.00"),
        counterparty(4, name="ИП Второе лицо", debt="500.00", overdueDebt="300.00", currency="USD"),
    ]
    return xml_export(cps, generated_at=gen.strftime("%Y-%m-%dT%H:%M:%S"))


@pytest.fixture
def filled(bitrix_db_url: str, db_url: str, tmp_path: Path) -> Iterator[Filled]:
    site = make_site(bitrix_db_url, tmp_path, migrated=True,
                     bitrix={"link_by": ["user_field:UF_1C_CONTRACTOR_ID", "xml_id"]})
    users = {
        "overdue": site.add_user("buyer", fields={"UF_1C_CONTRACTOR_ID": guid(1)}),
        "limit": site.add_user("limited", fields={"UF_1C_CONTRACTOR_ID": guid(2)}),
        # one buyer for two legal entities: one linked by the user field, one by XML_ID
        "two": site.add_user("two-firms", xml_id=guid(4), fields={"UF_1C_CONTRACTOR_ID": guid(3)}),
        "nolink": site.add_user("newcomer"),
    }
    now = datetime.now(ZONE).replace(tzinfo=None, second=0, microsecond=0)
    site.drop("settlements_1.xml", _export(now))
    result = site.run()
    assert result.exit_code == 0, result
    bare = make_engine(DatabaseConfig(url=db_url))  # Bitrix core tables, syncd never migrated
    core.create_stand_in_core(bare)
    bare.dispose()
    url = make_url(bitrix_db_url)
    env = {
        **os.environ,
        "SYNCD_PHP_DB_HOST": url.host or "127.0.0.1", "SYNCD_PHP_DB_PORT": str(url.port or 3306),
        "SYNCD_PHP_DB_USER": url.username or "root", "SYNCD_PHP_DB_PASSWORD": url.password or "",
        "SYNCD_PHP_DB_NAME": url.database or "", "SYNCD_PHP_DB_BARE": make_url(db_url).database or "",
        "SYNCD_PHP_DOCROOT": str(tmp_path / "docroot"), "SYNCD_PHP_CACHE": str(tmp_path / "cache"),
        "SYNCD_PHP_USERS": json.dumps(users),
    }
    yield Filled(site, users, env, now)
    site.engine.dispose()


def test_every_php_file_passes_php_lint() -> None:
    php = _tool("php")
    files = sorted([*MODULE.rglob("*.php"), *PHP_TESTS.rglob("*.php")])
    assert len(files) > 20
    bad = []
    for f in files:
        run = subprocess.run([php, "-l", str(f)], capture_output=True, text=True, timeout=60)
        if run.returncode != 0:
            bad.append(f"{f}: {run.stdout}{run.stderr}")
    assert not bad, "\n".join(bad)


def test_order_rule_phpunit_against_the_filled_database(filled: Filled) -> None:
    """Each decision of the OnSaleOrderBeforeSaved handler is a PHPUnit case (tests/php/OrderGuardTest.php)."""
    php, phpunit = _tool("php"), _tool("phpunit")
    run = subprocess.run([php, phpunit, "-c", str(PHP_TESTS / "phpunit.xml"), "--testdox"],
                         env=filled.env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    out = run.stdout + run.stderr
    print(out)
    assert run.returncode == 0, out
    assert "OK (17 tests" in out, out


class _Text(HTMLParser):
    """The visible text of a page (no style or script), and the body's data attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0
        self.body: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self.skip += 1
        if tag == "body":
            self.body = dict(attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)

    def text(self) -> str:
        return " ".join(" ".join(self.parts).replace("\xa0", " ").split())


def visible(html: str) -> _Text:
    parser = _Text()
    parser.feed(html)
    return parser


@pytest.fixture
def server(filled: Filled, tmp_path: Path) -> Iterator[str]:
    php = _tool("php")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "php-server.log").open("wb")
    proc = subprocess.Popen([php, "-d", "date.timezone=Europe/Moscow", "-S", f"127.0.0.1:{port}",
                             "-t", str(PHP_TESTS / "www")], env=filled.env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((tmp_path / "php-server.log").read_text()) from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read().decode(), str(resp.headers.get("X-Standin-Cache"))


def chromium(server: str, page: str, width: int, shot: Path) -> tuple[str, dict[str, str | None]]:
    """A screenshot of `page` in a window `width` px wide, and the text a reader sees at that width.

    The text comes from tests/php/www/frame.html (the page in an iframe of that width, its innerText
    copied out), because headless Chromium lays out --dump-dom at least 500 px wide."""
    exe = _tool("chromium")
    # --no-sandbox: CI runs as root; --disable-dev-shm-usage: containers with a small /dev/shm
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            f"--window-size={width},2000"]
    run = subprocess.run([*base, f"--screenshot={shot}", server + page], capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, run.stderr
    print(f"screenshot ({width} px): {shot}")
    frame = f"{server}frame.html?width={width}&page={urllib.parse.quote(page, safe='')}"
    dom = subprocess.run([*base, "--virtual-time-budget=10000", "--dump-dom", frame],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    text = visible(dom.stdout)
    return text.text(), text.body


def test_my_balance_page_in_chromium_desktop_and_phone(filled: Filled, server: str, tmp_path: Path) -> None:
    page = f"index.php?user={filled.users['overdue']}"
    as_of = (filled.now - timedelta(hours=2)).strftime("%d.%m.%Y %H:%M")
    today = filled.now.date()
    for width in (1280, 375):
        text, body = chromium(server, page, width, tmp_path / f"my-balance-{width}px.png")
        assert "Задолженность 125 000,00 ₽" in text, text
        assert "Просрочено 25 000,00 ₽" in text, text
        assert "Кредитный лимит 200 000,00 ₽ Доступно по лимиту 75 000,00 ₽" in text, text
        assert f"Данные на {as_of}" in text, text
        assert "Счёт № СЧ-101 просрочен" in text, text
        due = [(today + timedelta(days=d)).strftime("%d.%m.%Y") for d in (-30, 10, 40)]
        # documents by due date; the two-stage shipment is two lines
        assert text.index(due[0]) < text.index(due[1]) < text.index(due[2]), text
        assert text.count("Реализация № РН-202") == 2, text
        newest = (filled.now - timedelta(hours=2)).strftime("%d.%m.%Y")
        assert f"{newest} Банк № ПП-100 15 000,00 ₽" in text, text  # newest payment first
        assert "ПП-102" not in text  # page 2 (two payments a page)
        # nothing wider than the window: no sideways scrolling on a phone
        assert body.get("data-view-width") == str(width), body
        assert int(body.get("data-scroll-width") or 0) <= width, body


def test_page_two_two_firms_guest_and_no_link(filled: Filled, server: str) -> None:
    html, _ = get(f"{server}?user={filled.users['overdue']}&spage=2")
    assert "ПП-102" in visible(html).text() and "ПП-100" not in visible(html).text()
    text = visible(get(f"{server}?user={filled.users['two']}")[0]).text()
    assert text.index("ИП Второе лицо") < text.index("ООО «Первое лицо»")  # shown one after the other
    assert "Задолженность 500,00 $ Просрочено 300,00 $" in text, text  # in the counterparty's currency
    assert "Задолженность 1 000,00 ₽ Переплата (аванс) 200,00 ₽" in text, text
    guest = visible(get(f"{server}?user=0")[0]).text()
    assert "Войдите, чтобы увидеть взаиморасчёты." in guest and "Log in" in guest
    nolink = visible(get(f"{server}?user={filled.users['nolink']}")[0]).text()
    assert "К вашей учётной записи пока не привязан контрагент" in nolink


def test_a_new_apply_is_visible_on_the_next_page_load(filled: Filled, server: str) -> None:
    """The cache id holds the newest UF_UPDATED_AT: cached until syncd applies a newer export."""
    url = f"{server}?user={filled.users['overdue']}"
    first, state = get(url)
    assert state == "miss" and "125 000,00" in visible(first).text()
    again, state = get(url)
    assert (state, again) == ("hit", first)
    filled.site.drop("settlements_2.xml", _export(filled.now, debt="130000.00", hours_ago=1))
    assert filled.site.run().exit_code == 0
    after, state = get(url)
    text = visible(after).text()
    assert state == "miss" and "Задолженность 130 000,00 ₽" in text, text
    assert f"Данные на {(filled.now - timedelta(hours=1)).strftime('%d.%m.%Y %H:%M')}" in text


def test_stale_data_note(filled: Filled, server: str) -> None:
    with filled.site.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE contractor_balance SET UF_UPDATED_AT = UF_UPDATED_AT - INTERVAL 3 DAY")
    text = visible(get(f"{server}?user={filled.users['overdue']}")[0]).text()
    assert "Данные давно не обновлялись и могут отставать от учёта в 1С." in text, text
