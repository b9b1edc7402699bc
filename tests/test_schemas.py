"""The XSD and JSON Schema shipped for 1C developers agree with the samples and with the parsers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from lxml import etree

from syncd.contract.values import parse_amount, parse_date, parse_guid
from tests.data.build import CP1, counterparty_xml, json_export, payment_xml, xml_export

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "syncd" / "schemas"
SAMPLES = ROOT / "syncd" / "samples"

XSD = etree.XMLSchema(etree.parse(str(SCHEMAS / "settlements-v1.xsd")))
JSON_SCHEMA: dict[str, Any] = json.loads((SCHEMAS / "settlements-v1.schema.json").read_text(encoding="utf-8"))
JSON_VALIDATOR = jsonschema.Draft202012Validator(JSON_SCHEMA)


def xsd_errors(text: str | bytes) -> list[str]:
    document = etree.fromstring(text.encode("utf-8") if isinstance(text, str) else text)
    XSD.validate(document)
    return [error.message for error in XSD.error_log]


def json_errors(text: str) -> list[str]:
    return [error.message for error in JSON_VALIDATOR.iter_errors(json.loads(text))]


def test_json_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(JSON_SCHEMA)
    assert JSON_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", ["settlements_sample.xml", "settlements_sample_cp1251.xml"])
def test_xml_samples_validate_against_the_xsd(name: str) -> None:
    assert xsd_errors((SAMPLES / name).read_bytes()) == []


def test_1c_formatted_test_file_validates_against_the_xsd() -> None:
    assert xsd_errors((ROOT / "tests" / "data" / "good_1c_formatted.xml").read_bytes()) == []


def test_json_sample_validates_against_the_json_schema() -> None:
    assert json_errors((SAMPLES / "settlements_sample.json").read_text(encoding="utf-8")) == []


def test_xsd_refuses_what_syncd_refuses() -> None:
    assert xsd_errors(xml_export(header=f'formatVersion="2" exportId="{CP1}" generatedAt="2026-11-25"'))
    assert xsd_errors(xml_export(counterparty_xml(debt="1.234,56")))
    assert xsd_errors(xml_export(counterparty_xml(debt=None)))
    assert xsd_errors(xml_export(counterparty_xml("8f14e45f")))
    assert xsd_errors(xml_export(counterparty_xml(payments=[payment_xml(kind="wire")])))
    assert xsd_errors(xml_export(counterparty_xml(payments=[payment_xml(date="20261120")])))


def test_json_schema_refuses_what_syncd_refuses() -> None:
    assert json_errors(json_export(formatVersion=2))
    assert json_errors(json_export(counterparties=...))
    assert json_errors(json_export({"id": CP1, "debt": "1.234,56"}))
    assert json_errors(json_export({"id": CP1}))
    assert json_errors(json_export({"id": CP1, "debt": 1, "payments": [{"id": CP1, "date": "x", "sum": 1}]}))
    assert json_errors(json_export({"id": CP1, "debt": 1, "inn": 7701234567}))


AMOUNTS = ["12345.67", "0", "-1500.00", "12 345,67", "12\u00a0345,67", "1\u202f234\u202f567,89", "0,5", "10.125",
           "1 234.5", "1.234,56", "12e3", "abc", "12,345.67", "1 23,45", ".5", "5.", "--5", "+5", "1_000"]
DATES = ["2026-11-25", "2026-11-25T10:00:00", "2026-11-25T10:00:00.5Z", "2026-11-25T10:00:00+03:00", "25.11.2026",
         "25.11.2026 9:05:03", "20261125", "2026-11-25 10:00:00", "2026/11/25", "2026-11-25T10:00"]
GUIDS = [CP1, CP1.upper(), "8f14e45f-ceea-11e9-88ba-00155d003f0", "{8f14e45f-ceea-11e9-88ba-00155d003f0a}",
         "8f14e45fceea11e988ba00155d003f0a", "8f14e45g-ceea-11e9-88ba-00155d003f0a"]


def _accepts(parse: Any, value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def _json_accepts(definition: str, value: str) -> bool:
    validator = jsonschema.Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": JSON_SCHEMA["$defs"]})
    return validator.is_valid(value)


@pytest.mark.parametrize("value", AMOUNTS)
def test_amount_patterns_agree_with_the_parser(value: str) -> None:
    parsed = _accepts(parse_amount, value)
    assert _json_accepts("amount", value) == parsed
    assert (not xsd_errors(xml_export(counterparty_xml(debt=value)))) == parsed


@pytest.mark.parametrize("value", DATES)
def test_date_patterns_agree_with_the_parser(value: str) -> None:
    parsed = _accepts(parse_date, value)
    assert _json_accepts("date", value) == parsed
    assert (not xsd_errors(xml_export(counterparty_xml(payments=[payment_xml(date=value)])))) == parsed


@pytest.mark.parametrize("value", GUIDS)
def test_guid_patterns_agree_with_the_parser(value: str) -> None:
    parsed = _accepts(parse_guid, value)
    assert _json_accepts("guid", value) == parsed
    assert (not xsd_errors(xml_export(counterparty_xml(value)))) == parsed
