"""The field table (syncd.contract.fields) against what follows from it: the XSD and the JSON Schema, field
by field; the records made from it and their declarations for mypy; and the checker's two paths (the fast
one compiled from the table, the slow one that reports every bad field), which must agree on every field."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from syncd.contract import records
from syncd.contract.checks import Checker, rule_flags
from syncd.contract.fields import (
    COUNTERPARTY,
    COUNTERPARTY_PARTS,
    DOCUMENT,
    HEADER,
    LAST_PAYMENT,
    PAYMENT,
    STORED,
    SUMMARY,
    Field,
    Kind,
)
from syncd.contract.raw import RawCounterparty

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "syncd" / "schemas"
XS = "{http://www.w3.org/2001/XMLSchema}"
XSD = etree.parse(str(SCHEMAS / "settlements-v1.xsd")).getroot()
JSON_SCHEMA: dict[str, Any] = json.loads((SCHEMAS / "settlements-v1.schema.json").read_text(encoding="utf-8"))
KINDS = (HEADER, COUNTERPARTY, PAYMENT, DOCUMENT, LAST_PAYMENT, SUMMARY)
MOSCOW = ZoneInfo("Europe/Moscow")

# -- the schemas ---------------------------------------------------------------------------------------


def _xsd_type(kind: Kind) -> Any:
    """The XSD's complexType of a kind's element."""
    if kind is HEADER:
        return XSD.find(f"{XS}element[@name='SettlementsExport']/{XS}complexType")
    if kind in (SUMMARY, LAST_PAYMENT):
        return XSD.find(f".//{XS}element[@name='{kind.name}']/{XS}complexType")
    return XSD.find(f"{XS}complexType[@name='{kind.name}']")


def _xsd_attributes(kind: Kind) -> dict[str, bool]:
    """name -> required, of the attributes the XSD declares for the kind's element."""
    return {a.get("name"): a.get("use") == "required" for a in _xsd_type(kind).findall(f"{XS}attribute")}


def _xsd_elements(kind: Kind) -> dict[str, bool]:
    """name -> required, of the child elements the XSD declares for the kind's element."""
    return {e.get("name"): e.get("minOccurs") != "0" for e in _xsd_type(kind).findall(f"{XS}all/{XS}element")}


def _json_def(kind: Kind) -> dict[str, Any]:
    if kind is HEADER:
        return JSON_SCHEMA
    found: dict[str, Any]
    if kind is SUMMARY:
        found = JSON_SCHEMA["properties"]["summary"]
        return found
    defs = JSON_SCHEMA["$defs"]
    if kind is LAST_PAYMENT:
        found = next(o for o in defs["counterparty"]["properties"]["lastPayment"]["oneOf"] if o["type"] == "object")
        return found
    found = defs[kind.name.lower()]
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_xsd_spells_every_field_as_the_table_says(kind: Kind) -> None:
    attributes, elements = _xsd_attributes(kind), _xsd_elements(kind)
    for f in kind.fields:
        declared = elements if f.element else attributes
        assert f.xml in declared, f"{kind.name}.{f.key}: no XSD {'element' if f.element else 'attribute'} {f.xml}"
        assert declared[f.xml] == f.required, f"{kind.name}.{f.key}: required in the table: {f.required}"
    assert set(attributes) == {f.key for f in kind.attributes}
    parts = set(COUNTERPARTY_PARTS.values()) if kind is COUNTERPARTY else set()
    assert set(elements) == {f.xml for f in kind.elements} | parts


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_json_schema_spells_every_field_as_the_table_says(kind: Kind) -> None:
    spec = _json_def(kind)
    properties = set(spec["properties"])
    required = set(spec.get("required", ()))
    if kind is HEADER:  # the top level also holds the records and the summary
        properties -= {"counterparties", "summary"}
        required -= {"counterparties"}
    parts = set(COUNTERPARTY_PARTS) if kind is COUNTERPARTY else set()
    assert properties == kind.keys | parts
    assert required == {f.key for f in kind.fields if f.required}


# The XSD types that spell each value kind: a required field's, then an optional one's.
_XSD_TYPES: dict[str, tuple[str, ...]] = {
    "guid": ("Guid", "OptionalGuid"), "amount": ("Amount", "OptionalAmount"), "text": ("xs:string",),
    "date": ("DateValue", "OptionalDate"), "datetime": ("DateValue", "OptionalDate"), "currency": ("Currency",),
    "inn": ("Inn",), "kpp": ("Kpp",), "payment_kind": ("PaymentKind",), "document_kind": ("DocumentKind",),
}


@pytest.mark.parametrize("kind", [*STORED, LAST_PAYMENT], ids=lambda k: k.name)
def test_xsd_types_follow_the_values(kind: Kind) -> None:
    declared = {e.get("name"): e.get("type") for e in _xsd_type(kind).iter(f"{XS}attribute", f"{XS}element")}
    for f in kind.fields:
        types = _XSD_TYPES[f.value]
        expected = types[0] if f.required or len(types) == 1 else types[1]
        assert declared[f.xml] == expected, f"{kind.name}.{f.key}"


# -- the records -------------------------------------------------------------------------------------------


def _declared() -> Iterator[tuple[str, list[ast.AnnAssign]]]:
    """The classes records.py declares for mypy (under TYPE_CHECKING), with their annotated attributes."""
    tree = ast.parse(Path(records.__file__).read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    for node in block.body:
        assert isinstance(node, ast.ClassDef)
        yield node.name, [a for a in node.body if isinstance(a, ast.AnnAssign)]


_TYPES: dict[str, type] = {"guid": str, "amount": Decimal, "text": str, "date": dt.date, "datetime": dt.datetime,
                           "currency": str, "inn": str, "kpp": str, "payment_kind": str, "document_kind": str}


def _implied(f: Field) -> object:
    """The attribute's type the table implies: its value's; None too unless required or defaulted."""
    kind = _TYPES[f.value]
    return kind if f.required or f.default is not None else kind | None


def test_records_are_made_from_the_table() -> None:
    for kind in STORED:
        cls = getattr(records, kind.name)
        made = {f.name: f for f in dataclasses.fields(cls)}
        assert [f.attr for f in kind.fields if f.required] == list(made)[:sum(f.required for f in kind.fields)]
        for f in kind.fields:
            assert made[f.attr].type == _implied(f), f"{kind.name}.{f.attr}"
            if f.required:
                assert made[f.attr].default is dataclasses.MISSING
            else:
                assert made[f.attr].default == records.default(f)
        assert "__slots__" in vars(cls) and cls.__module__ == "syncd.contract.records"
    assert records.Counterparty("1", Decimal(1)).overdue_debt == Decimal("0.00")
    assert records.Counterparty("1", Decimal(1)).currency == "RUB"


def test_declarations_for_mypy_match_the_generated_records() -> None:
    namespace = vars(records)
    declared = dict(_declared())
    assert set(declared) == {kind.name for kind in STORED}
    for name, attributes in declared.items():
        cls = getattr(records, name)
        made = {f.name: f for f in dataclasses.fields(cls)}
        names = [ast.unparse(a.target) for a in attributes]
        assert names == [n for n in made if n in names], f"{name}: declared in another order than generated"
        for a, attr in zip(attributes, names, strict=True):
            assert attr in made, f"{name}.{attr} is declared but not made"
            assert eval(ast.unparse(a.annotation), namespace) == made[attr].type, f"{name}.{attr}"
            field = made[attr]
            if a.value is None:
                assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
                continue
            value = eval(ast.unparse(a.value), namespace)
            if isinstance(value, dataclasses.Field):
                assert value.default_factory == field.default_factory, f"{name}.{attr}"
            else:
                assert value == field.default, f"{name}.{attr}"


# -- the checker's fast and slow paths -----------------------------------------------------------------

# Values of each kind as files write them, good and bad; None (left out) and "" are added to each.
SAMPLES: dict[str, list[object]] = {
    "guid": ["8F14E45F-CEEA-11E9-88BA-00155D003F0A", "00000000-0000-0000-0000-000000000000", "8f14e45f", 12],
    "amount": ["12345.67", "12 345,67", "12\u00a0345,67", "-5.00", "-0.01", "0.01", "0", "0.00", "1.005", 5,
               Decimal("7.5"), Decimal("1E+3"), "1e3", "abc", True, 2.5, "99999999999999"],
    "text": ["№ 12", " ", 5],
    "date": ["2026-11-25", "25.11.2026", "2026-11-25T10:00:00", "0001-01-01", "0999-01-01", "2026-13-01", "x", 5],
    "datetime": ["2026-11-25T10:00:00", "2026-11-25T10:00:00+03:00", "25.11.2026 10:00:00", "2026-11-25",
                 "0001-01-01T00:00:00", "0001-01-02T00:00:00", "1000-01-01T01:00:00", "9999-12-31T23:59:59",
                 "2026-02-30T10:00:00", "soon", 5],
    "currency": ["usd", "RUB", "643", "RUBL", 643],
    "inn": ["7701234567", "770123456789", " 7701234567 ", "12345", 7701234567],
    "kpp": ["770101001", "77ab01001", "7701", 770101001],
    "payment_kind": ["bank", "CASH ", "wire", 1],
    "document_kind": ["invoice", "Order", "bill", 1],
}
_GOOD: dict[str, dict[str, object]] = {
    "Counterparty": {"id": "8f14e45f-ceea-11e9-88ba-00155d003f0a", "debt": "100.00", "name": "ООО «Ромашка»"},
    "Payment": {"id": "8f14e45f-ceea-11e9-88ba-00155d003f0b", "date": "2026-11-20T10:00:00", "sum": "50.00"},
    "Document": {"id": "8f14e45f-ceea-11e9-88ba-00155d003f0c", "date": "2026-11-01", "outstanding": "10.00"},
}


def _cases() -> Iterator[tuple[Kind, Field, object]]:
    for kind in STORED:
        for f in kind.fields:
            for value in [*SAMPLES[f.value], None, ""]:
                yield kind, f, value


def _fast(checker: Checker, kind: Kind, raw: RawCounterparty, item: dict[str, object]) -> object:
    if kind is COUNTERPARTY:
        return checker._convert_counterparty(raw)
    convert = checker._convert_payment if kind is PAYMENT else checker._convert_document
    return convert(item, raw, 1)


def _slow(checker: Checker, kind: Kind, raw: RawCounterparty, item: dict[str, object]) -> None:
    if kind is COUNTERPARTY:
        checker._counterparty_problems(raw)
    else:
        spec = checker._payment_spec if kind is PAYMENT else checker._document_spec
        checker._fields(item, spec, "here", kind.name)


@pytest.mark.parametrize(("kind", "f", "value"), list(_cases()),
                         ids=lambda x: x.name if isinstance(x, Kind) else x.key if isinstance(x, Field) else repr(x))
def test_fast_and_slow_path_agree(kind: Kind, f: Field, value: object) -> None:
    """A value the fast path takes, the slow path takes as the same value; one it refuses, the slow path
    reports (a record with one bad field), naming the field."""
    item = dict(_GOOD[kind.name])
    item.pop(f.key, None)
    if value is not None:
        item[f.key] = value
    # XML reads the counterparty's amounts from its child elements, the rest from its attributes.
    attrs = {k: v for k, v in item.items() if kind is not COUNTERPARTY or not kind.field(k).element}
    values = {k: v for k, v in item.items() if k not in attrs}
    raw = RawCounterparty(1, None, attrs if kind is COUNTERPARTY else {"id": _GOOD["Counterparty"]["id"]},
                          values, payments=[item] if kind is PAYMENT else [])
    checker = Checker("f.json", MOSCOW, dialect="json", strict=False, quiet=True,
                      bitrix_tz=ZoneInfo("America/New_York"))
    try:
        record: object = _fast(checker, kind, raw, item)
    except (ValueError, AttributeError):
        record = None
    _slow(checker, kind, raw, item)
    if record is None:
        assert len(checker.problems) == 1, checker.problems
        assert f"field {checker._field_label(f.key, kind.name)}:" in checker.problems[0]
    else:
        assert checker.problems == []
        expected = checker._field(item if kind is not COUNTERPARTY else (values if f.element else attrs), f.key,
                                  checker._parsers[f.value], rule_flags(f), None, kind.name)
        if expected is None:
            expected = records.default(f)
        got = getattr(record, f.attr)
        assert got == expected and type(got) is type(expected)
    checker.close()


def test_every_stored_kind_has_good_and_bad_samples_of_each_value() -> None:
    """Each kind of value a stored field uses is sampled: a new kind of value needs its samples here."""
    assert {f.value for kind in STORED for f in kind.fields} <= set(SAMPLES)
