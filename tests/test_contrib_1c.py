"""contrib/1c: the BSL sample of the 1C side cannot run here (no 1C platform); what can be checked is
that it writes the contract: every XML element and attribute and every JSON key it writes, record kind by
record kind, is the field table's (syncd/contract/fields.py), and none of the table's is missing; amounts
go through XMLСтрока (never the locale's Строка/Формат); the file is written as .tmp, renamed, then
marked with .done, locally and over FTPS; the HTTP service answers If-None-Match with 304."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from syncd.contract.fields import COUNTERPARTY, COUNTERPARTY_PARTS, DOCUMENT, HEADER, PAYMENT, SUMMARY, Kind

DIR = Path(__file__).resolve().parent.parent / "contrib" / "1c"
MODULE = (DIR / "ВыгрузкаВзаиморасчетов.bsl").read_text(encoding="utf-8")
SERVICE = (DIR / "HTTPСервис.Взаиморасчеты.bsl").read_text(encoding="utf-8")
ROUTINE = re.compile(r"^(?:Процедура|Функция) (\w+)\(.*?^(?:КонецПроцедуры|КонецФункции)", re.M | re.S)


def code(text: str) -> str:
    """The text without // comments (names in comments are not written)."""
    return re.sub(r"//[^\n]*", "", text)


def routines(text: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in ROUTINE.finditer(code(text))}


def xml_attributes() -> dict[str, set[str]]:
    """Each element's attributes, as the writer calls follow one another: an attribute belongs to the
    element last started."""
    found: dict[str, set[str]] = {}
    current = ""
    for m in re.finditer(r'ЗаписатьНачалоЭлемента\("(\w+)"\)|ЗаписатьАтрибут\("(\w+)"', code(MODULE)):
        if m.group(1):
            current = m.group(1)
            found.setdefault(current, set())
        else:
            found[current].add(m.group(2))
    return found


def keys(kind: Kind) -> set[str]:
    return set(kind.keys)


def test_xml_attributes_are_the_contracts() -> None:
    attrs = xml_attributes()
    assert attrs["SettlementsExport"] == keys(HEADER)
    assert attrs["Counterparty"] == {f.key for f in COUNTERPARTY.attributes}
    assert attrs["Payment"] == keys(PAYMENT)
    assert attrs["Document"] == keys(DOCUMENT)
    assert attrs["Summary"] == keys(SUMMARY)


def test_xml_elements_are_the_contracts() -> None:
    body = routines(MODULE)["ЗаписатьКонтрагентаXML"]
    amounts = set(re.findall(r'ЗаписатьСумму\(Запись, "(\w+)"', body))
    assert amounts == {f.xml for f in COUNTERPARTY.elements}
    started = set(xml_attributes())
    known = {"SettlementsExport", "Summary", *(k.name for k in (COUNTERPARTY, PAYMENT, DOCUMENT)),
             *COUNTERPARTY_PARTS.values()}
    assert started <= known, started - known
    assert {"Payments", "OpenDocuments"} <= started


def structure_keys(body: str) -> list[str]:
    """Keys of `Новый Структура("a, b", …)` and `.Вставить("c", …)`, in the order written."""
    out: list[str] = []
    for m in re.finditer(r'Новый Структура\("([^"]*)"|\.Вставить\("(\w+)"', body):
        out += [k.strip() for k in m.group(1).split(",")] if m.group(1) is not None else [m.group(2)]
    return out


@pytest.mark.parametrize(("routine", "expected"), [
    ("КонтрагентJSON", keys(COUNTERPARTY) | {"payments", "openDocuments"}),
    ("ОплатаJSON", keys(PAYMENT)),
    ("ДокументJSON", keys(DOCUMENT)),
])
def test_json_keys_are_the_contracts(routine: str, expected: set[str]) -> None:
    assert set(structure_keys(routines(MODULE)[routine])) == expected
    assert {"payments", "openDocuments"} <= set(COUNTERPARTY_PARTS)


def test_json_header_keys_come_before_the_counterparties() -> None:
    written = structure_keys(routines(MODULE)["ЗаписатьJSONВыгрузки"])
    cut = written.index("counterparties")
    assert set(written[:cut]) == keys(HEADER)  # syncd reads the header from the first bytes
    assert set(written[cut + 1:]) == {"summary"} | keys(SUMMARY)


def test_numbers_are_written_without_the_locales_formatting() -> None:
    body = code(MODULE)
    assert not re.search(r"(?<!\w)Строка\(", body)  # Строка(1234.5) gives "1 234,5"
    assert all(call.startswith('"ДФ=') for call in re.findall(r"(?<!\w)Формат\([^,]+, ([^)]*)\)", body))
    assert "XMLСтрока(Окр(Сумма, 2))" in body
    assert "ОткрытьФайл(ИмяФайла, \"UTF-8\", Ложь)" in body  # ЗаписьXML writes a BOM unless told not to


def order(body: str, *needles: str) -> list[int]:
    return [body.index(n) for n in needles]


def test_written_as_tmp_renamed_then_marked() -> None:
    r = routines(MODULE)
    local = r["ЗаписатьВыгрузку"]
    at = order(local, 'ПолноеИмя + ".tmp"', 'ПереместитьФайл(ПолноеИмя + ".tmp", ПолноеИмя)', 'ПолноеИмя + ".done"')
    assert at == sorted(at)
    ftp = r["ОтправитьПоFTPS"]
    at = order(ftp, 'Записать(Выгрузка.ПолноеИмя, Путь + ".tmp")', 'Переместить(Путь + ".tmp", Путь)',
               'Записать(Выгрузка.ПолноеИмя + ".done", Путь + ".done")')
    assert at == sorted(at)
    assert "Новый FTPСоединение(" in ftp and "ЗащищенноеСоединениеOpenSSL" in ftp
    assert "УровеньИспользованияЗащищенногоСоединенияFTP.Требовать" in ftp


def test_the_http_service_returns_the_export_with_an_etag_and_answers_304() -> None:
    body = code(SERVICE)
    assert "ВыгрузкаВзаиморасчетов.ПоследняяВыгрузка()" in body
    assert '"if-none-match"' in body and "Новый HTTPСервисОтвет(304)" in body
    assert 'Заголовки.Вставить("ETag", ETag)' in body and "УстановитьИмяФайлаТела" in body
    assert "ПоследняяВыгрузка" in routines(MODULE)


def test_the_readme_says_it_was_not_run() -> None:
    text = (DIR / "README.md").read_text(encoding="utf-8")
    assert "cannot be run here" in text and "tests/test_contrib_1c.py" in text
