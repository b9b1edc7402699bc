"""Reading export files: what is accepted, and how a bad file is refused (file, place, field, reason)."""

from __future__ import annotations

import gzip
import json
import logging
import time
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.contract.records import Counterparty, Header
from syncd.errors import ExportError
from syncd.formats import open_export, read_header
from tests.data.build import (
    CP1,
    CP2,
    DECLARATION,
    DOC1,
    EXPORT_ID,
    HEADER,
    PAY1,
    PAY2,
    counterparty_json,
    counterparty_xml,
    document_xml,
    json_export,
    payment_json,
    payment_xml,
    write,
    xml_export,
)

MOSCOW = ZoneInfo("Europe/Moscow")
SAMPLES = Path(__file__).resolve().parent.parent / "syncd" / "samples"
DATA = Path(__file__).resolve().parent / "data"


def read_all(path: Path, name: str | None = None) -> tuple[Header, list[Counterparty]]:
    with open_export(path, name=name or path.name, source_tz=MOSCOW) as export:
        return export.header, list(export.counterparties())


def refused(path: Path, name: str | None = None) -> str:
    with pytest.raises(ExportError) as caught:
        read_all(path, name)
    return str(caught.value)


# -- accepted files ------------------------------------------------------------------------------


def test_contract_example_xml(tmp_path: Path) -> None:
    path = write(tmp_path, "settlements_20261125_100000.xml", xml_export(
        counterparty_xml(debt="125 000,00",
                         extra="<OverdueDebt>25000.00</OverdueDebt><CreditLimit>500000</CreditLimit>",
                         attrs=' inn="7701234567" kpp="770101001" currency="RUB"',
                         payments=[payment_xml(number="00УТ-000123", kind="bank")],
                         documents=[document_xml(kind="shipment", number="00УТ-004512", amount="60000.00")]),
        header=HEADER + ' mode="full" paymentsFrom="2026-08-01"',
        summary='  <Summary counterparties="1" payments="1" documents="1"/>\n'))
    header, [cp] = read_all(path)
    assert header == Header(EXPORT_ID, datetime(2026, 11, 25, 10, tzinfo=MOSCOW), "full", date(2026, 8, 1), "1")
    assert cp.id == CP1 and cp.inn == "7701234567" and cp.kpp == "770101001" and cp.name == "ООО «Ромашка»"
    assert (cp.debt, cp.payable, cp.overdue_debt, cp.credit_limit) == (
        Decimal("125000.00"), Decimal("0.00"), Decimal("25000.00"), Decimal("500000.00"))
    assert cp.currency == "RUB" and cp.last_payment is None
    [payment] = cp.payments
    assert (payment.id, payment.date, payment.sum, payment.number, payment.kind, payment.purpose) == (
        PAY1, datetime(2026, 11, 20, 12, 30, tzinfo=MOSCOW), Decimal("10000.00"), "00УТ-000123", "bank", None)
    [document] = cp.documents
    assert (document.id, document.kind, document.number, document.date, document.due_date, document.amount,
            document.outstanding) == (DOC1, "shipment", "00УТ-004512", date(2026, 10, 1), date(2026, 10, 31),
                                      Decimal("60000.00"), Decimal("25000.00"))


def test_xml_and_json_samples_hold_the_same_data() -> None:
    xml_header, xml_cps = read_all(SAMPLES / "settlements_sample.xml")
    json_header, json_cps = read_all(SAMPLES / "settlements_sample.json")
    assert xml_header == json_header
    assert xml_cps == json_cps
    assert len(xml_cps) == 5
    assert any(cp.overdue_debt > 0 for cp in xml_cps)
    assert any(cp.payable > 0 for cp in xml_cps)
    assert any(cp.credit_limit is None for cp in xml_cps)


def test_windows_1251_crlf_sample_with_1c_formatted_values() -> None:
    raw = (SAMPLES / "settlements_sample_cp1251.xml").read_bytes()
    assert b'encoding="windows-1251"' in raw and b"\r\n" in raw
    header, [first, second] = read_all(SAMPLES / "settlements_sample_cp1251.xml")
    assert header.mode == "delta" and header.generated_at == datetime(2026, 11, 25, 18, 30, tzinfo=MOSCOW)
    assert first.name == "ООО «Ромашка»" and first.debt == Decimal("125000.00")
    assert first.payable == Decimal("0.00")  # written as "" by Формат(): absent, so the default
    assert first.payments[0].date == datetime(2026, 11, 20, 12, 30, tzinfo=MOSCOW)
    assert first.payments[0].purpose == "Оплата по счету № 00УТ-004512 от 01.10.2026"
    assert first.last_payment is not None and first.last_payment.date == date(2026, 11, 20)
    assert second.name == "ИП Кузнецова Анна Сергеевна" and second.credit_limit is None


def test_bom_and_crlf(tmp_path: Path) -> None:
    text = xml_export(counterparty_xml(payments=[payment_xml()])).replace("\n", "\r\n")
    path = write(tmp_path, "bom.xml", b"\xef\xbb\xbf" + text.encode("utf-8"))
    _, [cp] = read_all(path)
    assert cp.name == "ООО «Ромашка»" and cp.payments[0].id == PAY1
    json_path = write(tmp_path, "bom.json", b"\xef\xbb\xbf" + json_export().replace("\n", "\r\n").encode())
    _, [cp] = read_all(json_path)
    assert cp.name == "ООО «Ромашка»"


def test_tolerant_values_in_xml(tmp_path: Path) -> None:
    cp = counterparty_xml(CP1.upper(), debt="12 345,67",
                          extra="<Payable></Payable><OverdueDebt>1\u00a0000,5</OverdueDebt>",
                          payments=[payment_xml(PAY1.upper(), date="25.11.2026", sum="1,005")])
    header = HEADER.replace('generatedAt="2026-11-25T10:00:00"',
                            'generatedAt="2026-11-25T10:00:00+05:00" paymentsFrom=""')
    header_read, [read] = read_all(write(tmp_path, "values.xml", xml_export(cp, header=header)))
    assert header_read.payments_from is None
    assert header_read.generated_at.utcoffset() == timedelta(hours=5)
    assert read.id == CP1  # kept lower case
    assert (read.debt, read.payable, read.overdue_debt) == (Decimal("12345.67"), Decimal("0.00"), Decimal("1000.50"))
    assert read.payments[0].id == PAY1 and read.payments[0].sum == Decimal("1.01")
    assert read.payments[0].date == datetime(2026, 11, 25, tzinfo=MOSCOW)


def test_empty_dates_mean_absent(tmp_path: Path) -> None:
    path = write(tmp_path, "dates.xml", xml_export(counterparty_xml(
        documents=[document_xml(dueDate="0001-01-01T00:00:00"), document_xml(dueDate="")],
        extra='<LastPayment date="0001-01-01T00:00:00" sum=""/>')))
    with pytest.raises(ExportError, match="appears twice in this counterparty"):
        read_all(path)  # both lines have no due date: the same (document, due date)
    path = write(tmp_path, "dates2.xml", xml_export(counterparty_xml(
        documents=[document_xml(dueDate="0001-01-01T00:00:00")], extra='<LastPayment date="" sum=""/>')))
    _, [cp] = read_all(path)
    assert cp.documents[0].due_date is None and cp.last_payment is None


def test_json_numbers_are_decimals_never_floats(tmp_path: Path) -> None:
    text = json_export(counterparty_json(payments=[payment_json(sum=0)]))
    text = text.replace('"debt": "125000.00"', '"debt": 10.125').replace('"sum": 0', '"sum": 0.1')
    _, [cp] = read_all(write(tmp_path, "n.json", text))
    assert cp.debt == Decimal("10.13") and str(cp.debt) == "10.13"  # float would give 10.12
    assert cp.payments[0].sum == Decimal("0.10")


def test_format_is_told_by_content_not_name(tmp_path: Path) -> None:
    _, cps = read_all(write(tmp_path, "export.json", xml_export()))
    assert [cp.id for cp in cps] == [CP1]
    _, cps = read_all(write(tmp_path, "export.xml", json_export()))
    assert [cp.id for cp in cps] == [CP1]


def test_gzip_and_single_file_zip(tmp_path: Path) -> None:
    gz = write(tmp_path, "e.xml.gz", gzip.compress(xml_export().encode()))
    assert [cp.id for cp in read_all(gz)[1]] == [CP1]
    gz_json = write(tmp_path, "renamed.dat", gzip.compress(json_export().encode()))
    assert [cp.id for cp in read_all(gz_json)[1]] == [CP1]
    zipped = tmp_path / "e.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("folder/", "")
        archive.writestr("folder/settlements.json", json_export())
    assert [cp.id for cp in read_all(zipped)[1]] == [CP1]
    assert read_header(zipped, name="e.zip", source_tz=MOSCOW).export_id == EXPORT_ID


def test_zip_with_two_files_is_refused(tmp_path: Path) -> None:
    zipped = tmp_path / "two.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a.xml", xml_export())
        archive.writestr("b.xml", xml_export())
    assert refused(zipped) == "two.zip: a zip export must hold exactly one file; this one holds 2 (a.xml, b.xml)"


def test_broken_compression(tmp_path: Path) -> None:
    many = (counterparty_xml(f"{i:08x}-ceea-11e9-88ba-00155d003f0a") for i in range(50))
    data = gzip.compress(xml_export(*many).encode())
    message = refused(write(tmp_path, "cut.xml.gz", data[: len(data) // 2]))
    assert message.startswith("cut.xml.gz: the gzip data ends early: the file is cut short")
    message = refused(write(tmp_path, "bad.gz", data[:20] + b"\x00" * 40 + data[60:]))
    assert message.startswith("bad.gz: ") and ("gzip" in message or "XML" in message)
    assert refused(write(tmp_path, "bad.zip", b"PK\x03\x04" + b"\x00" * 30)).startswith(
        "bad.zip: cannot read the zip archive:")


def test_read_header_reads_only_the_start(tmp_path: Path) -> None:
    broken = xml_export(counterparty_xml(), header=HEADER + ' mode="delta"')[:-40]
    header = read_header(write(tmp_path, "cut.xml", broken), name="cut.xml", source_tz=MOSCOW)
    assert header.mode == "delta" and header.export_id == EXPORT_ID
    assert header.generated_at == datetime(2026, 11, 25, 10, tzinfo=MOSCOW)


# -- JSON layout ---------------------------------------------------------------------------------


def test_json_header_keys_after_the_array(tmp_path: Path) -> None:
    doc = {"counterparties": [counterparty_json()], "summary": {"counterparties": 1, "payments": 0, "documents": 0},
           "mode": "delta", "exportId": EXPORT_ID.upper(), "paymentsFrom": "2026-08-01", "formatVersion": "1",
           "generatedAt": "25.11.2026 10:00:00"}
    path = write(tmp_path, "late.json", json.dumps(doc))
    header = read_header(path, name="late.json", source_tz=MOSCOW)
    assert header == Header(EXPORT_ID, datetime(2026, 11, 25, 10, tzinfo=MOSCOW), "delta", date(2026, 8, 1), "1")
    assert read_all(path) == (header, [Counterparty(CP1, Decimal("125000.00"), name="ООО «Ромашка»")])


def test_json_summary_mismatch_after_the_array(tmp_path: Path) -> None:
    path = write(tmp_path, "s.json", json_export(summary={"counterparties": 2, "payments": 0, "documents": 0}))
    assert refused(path) == ("s.json: summary: field counterparties: the summary says 2 counterparties but the "
                             "file holds 1: the export is cut short or damaged; ask 1C to export again")


def test_json_shapes_refused(tmp_path: Path) -> None:
    assert refused(write(tmp_path, "a.json", "[1, 2]")) == (
        "a.json: not an XML or JSON export: it starts with '[1, 2]'; an export starts with < (XML) or { (JSON)"
        .replace("a.json: ", "a.json: line 1: "))
    message = refused(write(tmp_path, "b.json", json_export(counterparties={"id": CP1})))
    assert message == "b.json: field counterparties: counterparties must be an array ([…])"
    message = refused(write(tmp_path, "c.json", json_export(counterparties=...)))
    assert message.startswith("c.json: field counterparties: there is no counterparties array")
    message = refused(write(tmp_path, "d.json", json_export(counterparties=[counterparty_json(), "x"])))
    assert message == "d.json: counterparty #2: a string is not a counterparty: expected an object"
    message = refused(write(tmp_path, "e.json", json_export(counterparty_json(payments={"id": PAY1}))))
    assert message == f"e.json: counterparty #1 (id={CP1}): field payments: payments must be an array ([…])"
    message = refused(write(tmp_path, "f.json", json_export(counterparty_json(payments=["x"]))))
    assert message == f'f.json: payment #1 of counterparty #1 (id={CP1}): "x" is not a payment: expected an object'


def test_truncated_json(tmp_path: Path) -> None:
    text = json_export(counterparty_json(), counterparty_json(CP2, payments=[payment_json()]))
    for cut in (len(text) - 1, len(text) // 2, 30):
        message = refused(write(tmp_path, "t.json", text[:cut]))
        assert message.startswith("t.json: ") and "the file ends early: it is cut short" in message, message
    assert refused(write(tmp_path, "t2.json", text[: text.index(CP2) + 5])) == (
        "t2.json: counterparty #2: the file ends early: it is cut short (still being written, or damaged in "
        "transfer)")


def test_invalid_json(tmp_path: Path) -> None:
    text = json_export(counterparty_json(), counterparty_json(CP2)).replace(f'"id": "{CP2}"', f'"id" "{CP2}"')
    message = refused(write(tmp_path, "i.json", text))
    assert message.startswith("i.json: counterparty #2: not valid JSON: parse error:")
    bad_utf8 = json_export().encode().replace("Ромашка".encode(), b"\xff\xfe")
    assert "not valid JSON" in refused(write(tmp_path, "u.json", bad_utf8))
    assert "not valid JSON" in refused(write(tmp_path, "trail.json", json_export() + " {}"))


# -- refused XML -----------------------------------------------------------------------------------


def test_not_xml_or_json(tmp_path: Path) -> None:
    assert refused(write(tmp_path, "x.csv", "id;debt\n1;2\n")) == (
        "x.csv: line 1: not an XML or JSON export: it starts with 'id;debt\\n1;2\\n'; an export starts with < "
        "(XML) or { (JSON)")


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b" \r\n\t"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    assert refused(write(tmp_path, "e.xml", content)).startswith("e.xml: empty file: 1C may still be writing it")
    with pytest.raises(ExportError, match="empty file"):
        read_header(write(tmp_path, "e.xml", content), name="e.xml", source_tz=MOSCOW)


def test_empty_after_decompression(tmp_path: Path) -> None:
    assert refused(write(tmp_path, "e.gz", gzip.compress(b""))).startswith(
        "e.gz: empty file (after gzip decompression)")


def test_truncated_xml_names_the_line(tmp_path: Path) -> None:
    text = xml_export(counterparty_xml(payments=[payment_xml(), payment_xml(PAY2)]), counterparty_xml(CP2))
    lines = text.count("\n")
    for cut in (len(text) - 5, text.index(PAY2) + 3):
        message = refused(write(tmp_path, "cut.xml", text[:cut]))
        last_line = text[:cut].count("\n") + 1
        assert message.startswith(f"cut.xml: line {last_line}: not well-formed XML: "), message
        assert message.endswith("(the file ends here: it is cut short, still being written or damaged in transfer)")
    assert lines > 5


def test_xml_syntax_error_mid_file(tmp_path: Path) -> None:
    text = xml_export(counterparty_xml(payments=[payment_xml(number="a < b")]), counterparty_xml(CP2))
    message = refused(write(tmp_path, "bad.xml", text))
    assert message.startswith("bad.xml: line 6: not well-formed XML: Unescaped '<' not allowed in attributes values")
    assert "cut short" not in message


def test_doctype_refused_unread(tmp_path: Path) -> None:
    text = DECLARATION + '<!DOCTYPE SettlementsExport SYSTEM "http://example.invalid/x.dtd">\n' + \
        xml_export(prolog="")
    assert refused(write(tmp_path, "d.xml", text)) == (
        "d.xml: line 2: the file has a DOCTYPE or entity declaration; exports must not have one (it could "
        "expand entities), so the file is refused unread")
    with pytest.raises(ExportError, match="DOCTYPE"):
        read_header(write(tmp_path, "d.xml", text), name="d.xml", source_tz=MOSCOW)


def test_internal_entity_refused(tmp_path: Path) -> None:
    text = (DECLARATION + "<!-- a comment first -->\n"
            '<!DOCTYPE SettlementsExport [<!ENTITY debt "125000.00">]>\n'
            + xml_export(counterparty_xml(debt="&debt;"), prolog=""))
    assert refused(write(tmp_path, "ent.xml", text)).startswith("ent.xml: line 3: the file has a DOCTYPE")


def test_undeclared_entity_is_a_syntax_error(tmp_path: Path) -> None:
    message = refused(write(tmp_path, "u.xml", xml_export(counterparty_xml(debt="&debt;"))))
    assert message == "u.xml: line 4: not well-formed XML: Entity 'debt' not defined"


def test_billion_laughs_refused_quickly(tmp_path: Path) -> None:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)]
    text = (DECLARATION + "<!DOCTYPE lolz [\n" + "\n".join(entities) + "\n]>\n"
            + xml_export(counterparty_xml(attrs=' name="&lol9;"'), prolog=""))
    path = write(tmp_path, "lol.xml", text)
    started = time.monotonic()
    assert refused(path).startswith("lol.xml: line 2: the file has a DOCTYPE")
    assert time.monotonic() - started < 10  # refused before any expansion (expanded, it would not end)


def test_wrong_root(tmp_path: Path) -> None:
    text = DECLARATION + "<Settlements formatVersion=\"1\"/>\n"
    assert refused(write(tmp_path, "r.xml", text)) == (
        "r.xml: line 2: the root element is Settlements, expected SettlementsExport: this is not a settlements "
        "export")
    namespaced = xml_export(header='xmlns="urn:1c" ' + HEADER)
    assert refused(write(tmp_path, "ns.xml", namespaced)) == (
        "ns.xml: line 1: the root element must be SettlementsExport without a namespace")


@pytest.mark.parametrize(("version", "shown"), [('"2"', '"2"'), ('"1.0"', '"1.0"')])
def test_wrong_format_version(tmp_path: Path, version: str, shown: str) -> None:
    text = xml_export(header=HEADER.replace('formatVersion="1"', f"formatVersion={version}"))
    assert refused(write(tmp_path, "v.xml", text)) == (
        f"v.xml: line 2: field formatVersion: format version {shown} is not supported: this syncd reads version 1")
    assert refused(write(tmp_path, "v.json", json_export(formatVersion=2))) == (
        "v.json: field formatVersion: format version 2 is not supported: this syncd reads version 1")


def test_missing_header_fields(tmp_path: Path) -> None:
    text = xml_export(header='formatVersion="1" generatedAt="2026-11-25T10:00:00"')
    assert refused(write(tmp_path, "h.xml", text)) == "h.xml: line 2: field exportId: missing: this field is required"
    text = xml_export(header=HEADER.replace(EXPORT_ID, "00000000-0000-0000-0000-000000000000"))
    assert refused(write(tmp_path, "h.xml", text)) == (
        'h.xml: line 2: field exportId: "00000000-0000-0000-0000-000000000000" means empty, but this field is '
        "required")
    assert refused(write(tmp_path, "m.xml", xml_export(header=HEADER + ' mode="partial"'))) == (
        'm.xml: line 2: field mode: "partial" is not a mode: expected full or delta')


def test_missing_required_counterparty_field(tmp_path: Path) -> None:
    path = write(tmp_path, "f.xml", xml_export(counterparty_xml(), counterparty_xml(CP2, debt=None)))
    assert refused(path) == f"f.xml: line 6, counterparty #2 (id={CP2}): field Debt: missing: this field is required"
    path = write(tmp_path, "f.json", json_export(counterparty_json(), counterparty_json(CP2, debt="")))
    assert refused(path) == (
        f'f.json: counterparty #2 (id={CP2}): field debt: "" means empty, but this field is required')


def test_bad_values_name_the_record_and_field(tmp_path: Path) -> None:
    cases = {
        "guid.xml": (counterparty_xml("not-a-guid"),
                     'line 3, counterparty #1 (id=not-a-guid): field id: "not-a-guid" is not a GUID'),
        "amount.xml": (counterparty_xml(debt="1.234,56"),
                       f'line 3, counterparty #1 (id={CP1}): field Debt: "1.234,56" is not an amount'),
        "negative.xml": (counterparty_xml(extra="<OverdueDebt>-5</OverdueDebt>"),
                         f"line 3, counterparty #1 (id={CP1}): field OverdueDebt: -5.00 is negative: expected 0 or "
                         "more"),
        "date.xml": (counterparty_xml(payments=[payment_xml(), payment_xml(PAY2, date="2026-11-31")]),
                     f'line 7, payment #2 of counterparty #1 (id={CP1}): field date: "2026-11-31" is not a valid date'),
        "zero.xml": (counterparty_xml(payments=[payment_xml(sum="0,00")]),
                     f"line 6, payment #1 of counterparty #1 (id={CP1}): field sum: 0 is not a payment sum"),
        "doc.xml": (counterparty_xml(documents=[document_xml(outstanding="-1")]),
                    f"line 6, document #1 of counterparty #1 (id={CP1}): field outstanding: -1.00 is negative"),
        "kind.xml": (counterparty_xml(payments=[payment_xml(kind="wire")]),
                     f'line 6, payment #1 of counterparty #1 (id={CP1}): field kind: "wire" is not a payment kind'),
        "last.xml": (counterparty_xml(extra='<LastPayment date="2026-11-01"/>'),
                     f"line 3, counterparty #1 (id={CP1}): field LastPayment sum: a last payment needs both"),
    }
    for name, (cp, expected) in cases.items():
        message = refused(write(tmp_path, name, xml_export(cp)))
        assert message.startswith(f"{name}: {expected}"), message


def test_bad_values_in_json(tmp_path: Path) -> None:
    path = write(tmp_path, "p.json", json_export(counterparty_json(payments=[
        payment_json(), payment_json(PAY2, number=123)])))
    assert refused(path) == (f"p.json: payment #2 of counterparty #1 (id={CP1}): field number: 123 is not a string: "
                             "write it in quotes, as 1C shows it")
    path = write(tmp_path, "l.json", json_export(counterparty_json(lastPayment={"date": "2026-11-01", "sum": "x"})))
    assert refused(path).startswith(f'l.json: counterparty #1 (id={CP1}): field lastPayment.sum: "x" is not an amount')


def test_duplicate_counterparty_is_found_after_the_last_record(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.xml", xml_export(counterparty_xml(), counterparty_xml(CP2),
                                                 counterparty_xml(CP1.upper())))
    with open_export(path, name="dup.xml", source_tz=MOSCOW) as export:
        records = export.counterparties()
        assert [next(records).id for _ in range(3)] == [CP1, CP2, CP1]
        with pytest.raises(ExportError) as caught:
            next(records)
    assert str(caught.value) == (
        f"dup.xml: line 9, counterparty #3 (id={CP1.upper()}): field id: counterparty id {CP1} is listed 2 times "
        f"(line 3, counterparty #1 (id={CP1}); line 9, counterparty #3 (id={CP1.upper()})); each counterparty must "
        "appear once in the file")


def test_duplicate_payment_in_one_counterparty(tmp_path: Path) -> None:
    path = write(tmp_path, "p.xml", xml_export(counterparty_xml(payments=[payment_xml(), payment_xml(PAY2),
                                                                          payment_xml()])))
    assert refused(path) == (
        f"p.xml: line 8, payment #3 of counterparty #1 (id={CP1}): field id: payment id {PAY1} appears twice in "
        "this counterparty (first as payment #1, line 6); payment ids must be unique in the file")


def test_duplicate_payment_across_counterparties(tmp_path: Path) -> None:
    path = write(tmp_path, "p.json", json_export(counterparty_json(payments=[payment_json()]),
                                                 counterparty_json(CP2, payments=[payment_json(PAY2),
                                                                                  payment_json(PAY1)])))
    assert refused(path) == (
        f"p.json: payment #2 of counterparty #2 (id={CP2}): field id: payment id {PAY1} is listed 2 times "
        f"(payment #1 of counterparty #1 (id={CP1}); payment #2 of counterparty #2 (id={CP2})); payment ids must "
        "be unique in the file")


def test_same_document_twice_with_one_due_date(tmp_path: Path) -> None:
    stages = [document_xml(dueDate="2026-10-31"), document_xml(dueDate="2026-11-30")]
    _, [cp] = read_all(write(tmp_path, "ok.xml", xml_export(counterparty_xml(documents=stages))))
    assert [d.due_date for d in cp.documents] == [date(2026, 10, 31), date(2026, 11, 30)]
    path = write(tmp_path, "d.xml", xml_export(counterparty_xml(documents=[document_xml()]),
                                               counterparty_xml(CP2, documents=[document_xml()])))
    assert refused(path).startswith(
        f"d.xml: line 12, document #1 of counterparty #2 (id={CP2}): field id: document {DOC1} with due date "
        "2026-10-31 is listed 2 times (line 6, document #1 of counterparty #1")


def test_summary_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path, "s.xml", xml_export(
        counterparty_xml(payments=[payment_xml()]),
        summary='  <Summary counterparties="1" payments="2" documents="0"/>\n'))
    assert refused(path) == ("s.xml: line 9: field payments: the summary says 2 payments but the file holds 1: the "
                             "export is cut short or damaged; ask 1C to export again")


def test_summary_must_be_last(tmp_path: Path) -> None:
    text = xml_export(counterparty_xml(), summary='  <Summary counterparties="2" payments="0" documents="0"/>\n')
    text = text.replace("</SettlementsExport>", counterparty_xml(CP2) + "</SettlementsExport>")
    assert refused(write(tmp_path, "s.xml", text)) == (
        "s.xml: line 7: Summary (line 6) must be the last element; a Counterparty follows it")


def test_counterparty_in_a_wrapper_is_not_silently_ignored(tmp_path: Path) -> None:
    text = xml_export(f"<Counterparties>\n{counterparty_xml()}</Counterparties>\n")
    assert refused(write(tmp_path, "w.xml", text)) == (
        "w.xml: line 4: a Counterparty must be a child of the root element; this one is inside Counterparties")
    text = xml_export(counterparty_xml(extra=payment_xml()))
    assert refused(write(tmp_path, "p.xml", text)) == "p.xml: line 5: Payment must be inside Payments"


def test_unknown_names_warned_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cps = [counterparty_xml(f"{i:08x}-ceea-11e9-88ba-00155d003f0a", attrs=' region="77"',
                            extra="<Manager>Иванов</Manager>",
                            payments=[payment_xml(f"{i:08x}-aa01-11ef-8c3e-00155d003f0a", bank="Сбер")])
           for i in range(3)]
    path = write(tmp_path, "u.xml", xml_export(*cps, header=HEADER + ' source="УТ 11.5"'))
    with caplog.at_level(logging.WARNING, logger="syncd.formats"):
        _, records = read_all(path)
    assert len(records) == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "u.xml: line 2: unknown attribute 'source' of SettlementsExport ignored (not reported again for this file)",
        "u.xml: line 3: unknown attribute 'region' of Counterparty ignored (not reported again for this file)",
        "u.xml: line 5: unknown element Manager in Counterparty ignored (not reported again for this file)",
        "u.xml: line 7, payment #1 of counterparty #1 (id=00000000-ceea-11e9-88ba-00155d003f0a): unknown attribute "
        "'bank' of Payment ignored (not reported again for this file)",
    ]


def test_unknown_json_keys_warned_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "u.json", json_export(
        counterparty_json(region="77", payments=[payment_json(bank="x")]),
        counterparty_json(CP2, region="78"), source={"x": [1, 2]}))
    with caplog.at_level(logging.WARNING, logger="syncd.formats"):
        read_all(path)
    assert [r.getMessage() for r in caplog.records] == [
        "u.json: unknown top-level key 'source' ignored (not reported again for this file)",
        "u.json: counterparty #1: unknown key 'region' in counterparty ignored (not reported again for this file)",
        f"u.json: payment #1 of counterparty #1 (id={CP1}): unknown key 'bank' in payment ignored (not reported "
        "again for this file)",
    ]


def test_unknown_names_of_documents_are_warned_and_known_ones_written_null_are_not(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The reader counts an item's names against the known ones it found: an unknown name standing in
    # for a missing known one must still be told apart, and a known name written as null is no stranger.
    xml = write(tmp_path, "d.xml", xml_export(counterparty_xml(documents=[document_xml(dueDate=None, stage="2")])))
    payment = payment_json(number=None, kind=None)
    document = {"id": DOC1, "date": "2026-10-01", "dueDate": None, "amount": None, "outstanding": "25000.00"}
    js = write(tmp_path, "d.json", json_export(counterparty_json(payments=[payment], openDocuments=[document]),
                                               counterparty_json(CP2, openDocuments=[
                                                   {**document, "id": PAY2, "dueDate": None, "stage": 1}])))
    with caplog.at_level(logging.WARNING, logger="syncd.formats"):
        assert len(read_all(xml)[1]) == 1
        assert len(read_all(js)[1]) == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"d.xml: line 6, document #1 of counterparty #1 (id={CP1}): unknown attribute 'stage' of Document ignored "
        "(not reported again for this file)",
        f"d.json: document #1 of counterparty #2 (id={CP2}): unknown key 'stage' in document ignored (not reported "
        "again for this file)",
    ]


def test_counterparties_can_be_read_once(tmp_path: Path) -> None:
    with open_export(write(tmp_path, "o.xml", xml_export()), name="o.xml", source_tz=MOSCOW) as export:
        assert len(list(export.counterparties())) == 1
        with pytest.raises(RuntimeError, match="only once"):
            list(export.counterparties())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"^gone.xml: cannot open the file: No such file or directory$"):
        read_header(tmp_path / "gone.xml", name="gone.xml", source_tz=MOSCOW)


def test_data_files() -> None:
    """The files in tests/data are the small bad exports shown in docs/export-format.md."""
    assert refused(DATA / "bad_doctype.xml").startswith("bad_doctype.xml: line 2: the file has a DOCTYPE")
    assert refused(DATA / "bad_summary.json").startswith("bad_summary.json: summary: field documents:")
    _, cps = read_all(DATA / "good_1c_formatted.xml")
    assert [cp.debt for cp in cps] == [Decimal("12345.67"), Decimal("0.00")]
