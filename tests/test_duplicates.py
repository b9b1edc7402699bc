"""Each element and key at most once: a second value for one field is refused, never "the last one wins".

A 1C export built by string concatenation or by two merged query rows can write `<Debt>` twice, or a
JSON object with `"debt"` twice. Which of the two is meant cannot be told, so the file is refused,
naming the record and the element or key. Both `syncd validate` (collecting) and the apply path
(strict, with the byte shortcut of known counterparties in front) must say so.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from zoneinfo import ZoneInfo

import ijson
import pytest

from syncd.admin.validate import check_file
from syncd.bitrix.hlblock import DigestIndex
from syncd.bitrix.users import Linker
from syncd.contract.records import Counterparty, Unchanged
from syncd.errors import ExportError
from syncd.formats import open_export
from syncd.formats.jsonkeys import KeyCount
from tests.exports import counterparty, guid, json_export, xml_export

MSK = ZoneInfo("Europe/Moscow")
CP1, CP2 = guid(1), guid(2)


def _problems(tmp_path: Path, name: str, content: bytes) -> list[str]:
    path = tmp_path / name
    path.write_bytes(content)
    return check_file(path, name=name, source_tz=MSK).problems


def _changes(path: Path, index: DigestIndex) -> list[Counterparty | Unchanged]:
    with open_export(path, name=path.name, source_tz=MSK) as export:
        return list(export.changes(index))


def _index(records: list[Counterparty | Unchanged]) -> DigestIndex:
    return DigestIndex(b"salt", Linker(), [(r.digest, n, None) for n, r in enumerate(records, 1) if r.digest])


def _xml(**replace: str) -> bytes:
    """Two counterparties (the second with a payment, a document and a last payment), edited by text."""
    cps = [counterparty(1), counterparty(2, payments=1, documents=1,
                                          lastPayment={"date": "2026-11-01", "sum": "100.00"})]
    text = xml_export(cps).decode()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text.encode()


SECOND_DEBT = "<Debt>1000.00</Debt>\n    <LastPayment"

# -- XML ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("element", "old", "new"), [
    ("Debt", SECOND_DEBT, "<Debt>1000.00</Debt><Debt>0.00</Debt>\n    <LastPayment"),
    ("Payable", SECOND_DEBT, "<Debt>1000.00</Debt><Payable>1</Payable><Payable>2</Payable>\n    <LastPayment"),
    ("OverdueDebt", SECOND_DEBT, "<Debt>1000.00</Debt><OverdueDebt>1</OverdueDebt><OverdueDebt/>\n    <LastPayment"),
    ("CreditLimit", SECOND_DEBT, "<Debt>1000.00</Debt><CreditLimit>5</CreditLimit><CreditLimit>0</CreditLimit>\n"
                                 "    <LastPayment"),
    ("LastPayment", "<Payments>", '<LastPayment date="2026-11-02" sum="5.00"/><Payments>'),
    ("Payments", "</Payments>", f'</Payments><Payments><Payment id="{guid(9, 1)}" date="2026-11-03" '
                                f'sum="7.00"/></Payments>'),
    ("OpenDocuments", "</OpenDocuments>", "</OpenDocuments><OpenDocuments/>"),
])
def test_an_xml_element_twice_in_a_counterparty_is_refused(tmp_path: Path, element: str, old: str, new: str) -> None:
    problems = _problems(tmp_path, "d.xml", _xml(**{old: new}))

    # (the second Payments also makes the summary's count wrong: that comes after, at the Summary)
    assert problems, problems
    assert f"counterparty #2 (id={CP2}): field {element}: the element {element} appears twice" in problems[0]
    assert problems[0].startswith("d.xml: line ")


@pytest.mark.parametrize(("owner", "old", "new", "field"), [
    ("Payment", 'kind="bank"/>', 'kind="bank"><sum>5.00</sum></Payment>', "sum"),
    ("Document", 'outstanding="250.00"/>', 'outstanding="250.00"><outstanding>0</outstanding></Document>',
     "outstanding"),
    ("LastPayment", '<LastPayment date="2026-11-01" sum="100.00"/>',
     "<LastPayment><date>2026-11-01</date><sum>100.00</sum></LastPayment>", "date"),
])
def test_an_xml_field_written_as_a_child_element_is_refused(tmp_path: Path, owner: str, old: str, new: str,
                                                            field: str) -> None:
    # The contract has these fields as attributes: a child element of the same name is either a second
    # value beside the attribute, or a value the reader would silently not see.
    problems = _problems(tmp_path, "c.xml", _xml(**{old: new}))

    assert any(f"field {field}: written as a child element of {owner}" in p for p in problems), problems


def test_an_unknown_child_element_of_a_payment_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                               ) -> None:
    with caplog.at_level(logging.WARNING, "syncd.formats"):
        problems = _problems(tmp_path, "u.xml", _xml(**{'kind="bank"/>': 'kind="bank"><Note>x</Note></Payment>'}))

    assert problems == []
    assert "unknown element Note in Payment ignored" in caplog.text


def test_a_value_element_holding_an_element_is_refused(tmp_path: Path) -> None:
    # lxml gives the text before the child only: <Debt>1<b/>000</Debt> would read as 1.00.
    problems = _problems(tmp_path, "e.xml", _xml(**{SECOND_DEBT: "<Debt>1<b/>000.00</Debt>\n    <LastPayment"}))

    assert len(problems) == 1 and f"counterparty #2 (id={CP2}): field Debt: " in problems[0], problems
    assert "must hold only its value as text" in problems[0]


def test_a_currency_on_an_amount_that_contradicts_the_counterparty_is_refused(tmp_path: Path) -> None:
    # The counterparty's currency is the currency of all its amounts; an amount that says otherwise
    # would be shown in the wrong currency.
    problems = _problems(tmp_path, "u.xml", _xml(**{SECOND_DEBT: '<Debt currency="USD">1000.00</Debt>\n'
                                                                 '    <LastPayment'}))

    assert len(problems) == 1, problems
    assert f"counterparty #2 (id={CP2}): field Debt: the amount says currency USD" in problems[0]
    assert "the counterparty's currency is RUB" in problems[0]


@pytest.mark.parametrize("attribute", ['currency="rub"', 'unit="руб."'])
def test_other_attributes_on_an_amount_are_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                        attribute: str) -> None:
    with caplog.at_level(logging.WARNING, "syncd.formats"):
        problems = _problems(tmp_path, "w.xml", _xml(**{SECOND_DEBT: f"<Debt {attribute}>1000.00</Debt>\n"
                                                                     "    <LastPayment"}))

    assert problems == []
    assert f"unknown attribute {attribute.split('=')[0]!r} of Debt ignored" in caplog.text


def test_a_changed_xml_counterparty_with_an_element_twice_is_refused_when_the_others_are_known(
        tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_bytes(_xml())
    index = _index(_changes(path, DigestIndex(b"salt", Linker(), [])))
    path.write_bytes(_xml(**{SECOND_DEBT: "<Debt>1000.00</Debt><Debt>0.00</Debt>\n    <LastPayment"}))

    with pytest.raises(ExportError, match=f"counterparty #2 \\(id={CP2}\\): field Debt: the element Debt appears"):
        _changes(path, index)


def test_a_contract_element_in_a_namespace_is_refused_not_ignored(tmp_path: Path) -> None:
    # Ignored as unknown, namespaced counterparties would leave a full export empty: every debt zeroed.
    content = xml_export([counterparty(1), counterparty(2)], summary=False).replace(
        b"<Counterparty ", b'<Counterparty xmlns="urn:x" ')

    problems = _problems(tmp_path, "n.xml", content)

    assert problems and all("the element Counterparty has a namespace (urn:x)" in p for p in problems), problems
    assert len(problems) == 2 and problems[0].startswith("n.xml: line 3: ")


# -- JSON ---------------------------------------------------------------------------------------


def _json(**replace: str) -> bytes:
    """The same two counterparties in JSON (one key a line), edited by text."""
    cps = [counterparty(1), counterparty(2, payments=1, documents=1,
                                          lastPayment={"date": "2026-11-01", "sum": "100.00"})]
    text = json_export(cps).decode()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text.encode()


SECOND = f'"id": "{CP2}",'
PAYMENT_SUM = '"sum": "100.00",'
OUTSTANDING = '"outstanding": "250.00"'
LAST_SUM = '"sum": "100.00"\n   }'


@pytest.mark.parametrize(("where", "field", "old", "new"), [
    (f"counterparty #2 (id={CP2})", "debt", SECOND, f'{SECOND} "debt": "0.00",'),
    (f"counterparty #2 (id={CP2})", "id", SECOND, f'"id": "{guid(7)}", {SECOND}'),
    (f"counterparty #2 (id={CP2})", "note", SECOND, f'{SECOND} "note": "a", "note": "b",'),
    (f"counterparty #2 (id={CP2})", "payments", SECOND, f'{SECOND} "payments": [],'),
    (f"payment #1 of counterparty #2 (id={CP2})", "sum", PAYMENT_SUM, f'{PAYMENT_SUM} "sum": "1.00",'),
    (f"payment #1 of counterparty #2 (id={CP2})", "id", PAYMENT_SUM, f'{PAYMENT_SUM} "id": "{guid(9, 1)}",'),
    (f"document #1 of counterparty #2 (id={CP2})", "outstanding", OUTSTANDING, f'"outstanding": "0", {OUTSTANDING}'),
    (f"counterparty #2 (id={CP2})", "lastPayment.sum", LAST_SUM, '"sum": "100.00", "sum": "5.00"\n   }'),
])
def test_a_json_key_twice_in_a_record_is_refused(tmp_path: Path, where: str, field: str, old: str, new: str) -> None:
    problems = _problems(tmp_path, "d.json", _json(**{old: new}))

    assert any(f"d.json: {where}: field {field}: the key '{field.split('.')[-1]}' appears twice" in p
               for p in problems), problems


@pytest.mark.parametrize(("key", "old", "new"), [
    ("exportId", '"mode": "full",', f'"mode": "full", "exportId": "{guid(5)}",'),
    ("source", '"mode": "full",', '"mode": "full", "source": "УТ", "source": "ERP",'),
    ("payments", '"payments": 1,', '"payments": 1, "payments": 2,'),
])
def test_a_json_key_twice_in_the_header_or_summary_is_refused(tmp_path: Path, key: str, old: str, new: str) -> None:
    problems = _problems(tmp_path, "h.json", _json(**{old: new}))

    assert any(f"field {key}: the key '{key}' appears twice" in p for p in problems), problems


@pytest.mark.parametrize(("why", "old", "new"), [
    ("an object inside an unknown key", SECOND, f'{SECOND} "extra": {{"a": 1, "b": {{"c": 2}}}},'),
    ("colons, quotes and backslashes in strings", SECOND,
     SECOND + ' "name2": "ООО \\"Ромашка\\": филиал \\\\ 12:30", "x": ":\\\\", "y": "\\\\\\"",'),
    ("whitespace before a colon", '"debt": "1000.00"', '"debt"\n :\t"1000.00"'),
    ("an object inside a payment", PAYMENT_SUM, f'{PAYMENT_SUM} "bank": {{"bic": "044525225"}},'),
])
def test_json_without_a_key_twice_is_accepted(tmp_path: Path, why: str, old: str, new: str) -> None:
    assert _problems(tmp_path, "ok.json", _json(**{old: new})) == [], why


def test_a_key_twice_is_found_beside_whitespace_before_a_colon(tmp_path: Path) -> None:
    # A key written `"debt" :` is not followed by `":`, so a count of those would be one short and
    # hide the extra key: the count is of colons outside strings.
    problems = _problems(tmp_path, "w.json", _json(**{'"debt": "1000.00"': '"debt" : "1000.00", "debt": "0"'}))

    assert any(f"counterparty #1 (id={CP1}): field debt: the key 'debt' appears twice" in p for p in problems)


def test_a_changed_json_counterparty_with_a_key_twice_is_refused_when_the_others_are_known(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(_json())
    index = _index(_changes(path, DigestIndex(b"salt", Linker(), [])))
    path.write_bytes(_json(**{PAYMENT_SUM: f'{PAYMENT_SUM} "sum": "1.00",'}))

    with pytest.raises(ExportError, match=f"payment #1 of counterparty #2 \\(id={CP2}\\): field sum: the key 'sum'"):
        _changes(path, index)


def _random_json(rnd: random.Random, pieces: list[str], depth: int = 0) -> str:
    """A JSON value with the characters that could fool a count of keys: quotes, backslashes, colons,
    whitespace (around colons too, and \\v, \\f that ijson takes for whitespace), escapes of every kind."""
    kind = rnd.choice(["obj", "obj", "arr", "str", "num"] if depth < 3 else ["str", "num"])
    space = lambda: rnd.choice(["", "", " ", "\n", "\t", "\r\n ", "\v", "\f"])  # noqa: E731
    if kind == "obj":
        pairs = [f"{space()}{_random_string(rnd, pieces)}{space()}:{space()}{_random_json(rnd, pieces, depth + 1)}"
                 for _ in range(rnd.randint(0, 4))]
        return "{" + ",".join(pairs) + space() + "}"
    if kind == "arr":
        return "[" + ",".join(_random_json(rnd, pieces, depth + 1) for _ in range(rnd.randint(0, 3))) + "]"
    if kind == "str":
        return _random_string(rnd, pieces)
    return rnd.choice(["0", "-1.5", "12e3", "true", "null"])


def _random_string(rnd: random.Random, pieces: list[str]) -> str:
    return '"' + "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 6))) + '"'


PIECES = ['\\"', "\\\\", "a", "й", " ", "\\n", "\\u0022", "\\/", "{", "]", "\\\\\\\""]
COLONS = [":", '\\":', "a:b", "12:30:00"]


def _key_count(data: bytes, rnd: random.Random) -> int:
    count = KeyCount()
    pos = 0
    while pos < len(data):
        end = pos + rnd.randint(1, 40)
        count.feed(data[pos:end])
        pos = end
    return count.keys


@pytest.mark.parametrize("seed", range(20))
def test_the_key_count_is_never_below_the_parsers_however_the_bytes_are_cut(seed: int) -> None:
    rnd = random.Random(seed)
    exact = ("[" + ",".join(_random_json(rnd, PIECES) for _ in range(30)) + "]").encode()
    anything = ("[" + ",".join(_random_json(rnd, PIECES + COLONS) for _ in range(30)) + "]").encode()

    # Strings that do not start with a colon: exactly the keys. Otherwise never fewer.
    assert _key_count(exact, rnd) == sum(1 for _, event, _ in ijson.parse(exact) if event == "map_key")
    assert _key_count(anything, rnd) >= sum(1 for _, event, _ in ijson.parse(anything) if event == "map_key")


def test_a_datetime_or_a_colon_inside_a_string_is_not_counted() -> None:
    count = KeyCount()
    count.feed(b'[{"date": "2026-11-20T12:30:00", "purpose": "\\u0022 \\":\\" a: b", "id" \t\n: "x"}]')

    assert count.keys == 3


def test_an_object_under_a_key_1c_added_does_not_make_the_file_read_twice(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # The contract lets 1C add keys; one holding an object must not send every file to the slow look.
    looked: list[bool] = []
    monkeypatch.setattr("syncd.formats.json.duplicate_keys", lambda stream: looked.append(True) or iter(()))
    content = _json(**{SECOND: f'{SECOND} "contract": {{"number": "Д-1", "terms": [{{"days": 30}}, {{"days": 60}}]}},'})

    assert _problems(tmp_path, "c.json", content) == [] and looked == []
