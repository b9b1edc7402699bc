"""The tolerant value formats of the contract: exact results, and messages that quote the bad value."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from syncd.contract.values import (
    _formatted_amount,
    _parse_amount,
    _split_datetime,
    non_negative,
    non_zero,
    parse_amount,
    parse_count,
    parse_currency,
    parse_date,
    parse_datetime,
    parse_document_kind,
    parse_format_version,
    parse_guid,
    parse_inn,
    parse_kpp,
    parse_mode,
    parse_payment_kind,
    parse_text,
)

MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12345.67", "12345.67"),
        ("0", "0.00"),
        ("500000", "500000.00"),
        ("-1500.00", "-1500.00"),
        ("12 345,67", "12345.67"),
        ("12\u00a0345,67", "12345.67"),  # 1C's Формат(): no-break space groups
        ("1\u202f234\u202f567,89", "1234567.89"),  # narrow no-break space
        ("-12\u00a0345,67", "-12345.67"),
        ("1 234.5", "1234.50"),
        ("0,5", "0.50"),
        ("10.125", "10.13"),  # half up on the digits as written
        ("10.124", "10.12"),
        ("-10.125", "-10.13"),
        ("  42.00 ", "42.00"),
        ("9999999999999.99", "9999999999999.99"),
        (Decimal("10.125"), "10.13"),  # a JSON number from ijson (use_float=False)
        (Decimal("125000.0"), "125000.00"),
        (7, "7.00"),
        ("-0.001", "0.00"),
    ],
)
def test_amounts_accepted(raw: object, expected: str) -> None:
    result = parse_amount(raw)
    assert result == Decimal(expected)
    assert str(result) == expected  # always two decimals, never "-0.00"


@pytest.mark.parametrize("raw", ["", "   ", None])
def test_empty_amount_is_absent(raw: object) -> None:
    assert parse_amount(raw) is None


@pytest.mark.parametrize("raw", ["1.234,56", "12e3", "1E5", "abc", "12,345.67", "1 23,45", "12.34.56", "--5",
                                 ".5", "5.", "NaN", "Infinity", "1_000", "+5", "١٢٣", True, Decimal("1.5E+3"), [1], {}])
def test_amounts_refused_with_the_value_quoted(raw: object) -> None:
    with pytest.raises(ValueError, match="is not an amount") as caught:
        parse_amount(raw)
    if isinstance(raw, str):
        assert f'"{raw}"' in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12\u00a0345,67", "12345.67"), ("1 234 567,89", "1234567.89"), ("1\u202f000,00", "1000.00"),
     ("345,67", "345.67"), ("0,00", "0.00"), ("9\u00a0999\u00a0999\u00a0999\u00a0999,99", "9999999999999.99")],
)
def test_formatted_amounts_take_the_short_way(raw: str, expected: str) -> None:
    assert str(_formatted_amount(raw)) == expected


@pytest.mark.parametrize("raw", ["1 23,45", "1234 567,89", "12 345 ,67", "1 234\u00a0567,89", " 345,67", "-345,67",
                                 "10 000 000 000 000,00", "345,6", "345.67", "1 234", "١٢,٣٤"])
def test_other_amounts_are_left_to_the_full_parser(raw: str) -> None:
    assert _formatted_amount(raw) is None


def test_the_short_way_agrees_with_the_full_parser() -> None:
    rng = random.Random(20261126)
    alphabet = "0123456789" * 3 + " \u00a0\u202f,.-"
    taken = 0
    for _ in range(50_000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 14)))
        quick = _formatted_amount(raw)
        if quick is None:
            continue
        taken += 1
        assert quick == _parse_amount(raw), raw
        assert str(quick) == str(_parse_amount(raw)), raw
    assert taken > 100  # the random strings did reach the short way


def test_amount_out_of_1c_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_amount("10000000000000.00")


def test_non_negative_and_non_zero() -> None:
    assert non_negative(Decimal("0.00")) == Decimal("0")
    with pytest.raises(ValueError, match="negative: expected 0 or more"):
        non_negative(Decimal("-1.00"))
    assert non_zero(Decimal("-1.00")) == Decimal("-1")
    with pytest.raises(ValueError, match="non-zero"):
        non_zero(Decimal("0.00"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-25", datetime(2026, 11, 25, tzinfo=MOSCOW)),  # a date where a datetime is stored: midnight
        ("2026-11-25T10:00:00", datetime(2026, 11, 25, 10, tzinfo=MOSCOW)),
        ("2026-11-25T10:00:00.250", datetime(2026, 11, 25, 10, 0, 0, 250000, tzinfo=MOSCOW)),
        ("2026-11-25T10:00:00Z", datetime(2026, 11, 25, 10, tzinfo=UTC)),
        ("2026-11-25T10:00:00+03:00", datetime(2026, 11, 25, 10, tzinfo=timezone(timedelta(hours=3)))),
        ("2026-11-25T10:00:00.5-05:00", datetime(2026, 11, 25, 10, 0, 0, 500000, timezone(timedelta(hours=-5)))),
        ("25.11.2026", datetime(2026, 11, 25, tzinfo=MOSCOW)),
        ("25.11.2026 10:00:00", datetime(2026, 11, 25, 10, tzinfo=MOSCOW)),
        ("25.11.2026 9:05:03", datetime(2026, 11, 25, 9, 5, 3, tzinfo=MOSCOW)),  # 1C's Строка(): no leading zero
    ],
)
def test_datetimes(raw: str, expected: datetime) -> None:
    result = parse_datetime(raw, MOSCOW)
    assert result == expected
    assert result is not None and result.utcoffset() == expected.utcoffset()


def test_russian_datetimes_read_the_short_way_as_by_the_full_parser() -> None:
    # 25.11.2026 10:00:00 is read as the ISO text it stands for; with random digits and stray
    # characters it must give what the full parser (_split_datetime) gives, or be refused as there.
    rng = random.Random(1125)
    valid = 0
    for _ in range(20_000):
        chars = list(f"{rng.randrange(0, 40):02d}.{rng.randrange(0, 14):02d}.{rng.randrange(1, 3000):04d} "
                     f"{rng.randrange(0, 26):02d}:{rng.randrange(0, 62):02d}:{rng.randrange(0, 62):02d}")
        if rng.random() < 0.2:
            chars[rng.randrange(19)] = rng.choice("-:T x9")
        raw = "".join(chars)
        try:
            parts = _split_datetime(raw)
        except ValueError:
            with pytest.raises(ValueError):
                parse_datetime(raw, MOSCOW)
            continue
        valid += 1
        expected = None if parts is None else datetime.combine(parts[0], parts[1] or time(), MOSCOW)
        assert parse_datetime(raw, MOSCOW) == expected, raw
    assert valid > 1000


def test_naive_datetime_gets_the_source_zone() -> None:
    result = parse_datetime("2026-07-01T12:00:00", ZoneInfo("Asia/Yekaterinburg"))
    assert result is not None and result.utcoffset() == timedelta(hours=5)


@pytest.mark.parametrize("raw", ["", "0001-01-01T00:00:00", "0001-01-01", "01.01.0001", "01.01.0001 0:00:00", None])
def test_empty_dates_are_absent(raw: object) -> None:
    assert parse_datetime(raw, MOSCOW) is None
    assert parse_date(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2026-10-01", date(2026, 10, 1)), ("2026-10-01T00:00:00", date(2026, 10, 1)), ("01.10.2026", date(2026, 10, 1)),
     ("2026-10-01T23:30:00+03:00", date(2026, 10, 1))],
)
def test_dates(raw: str, expected: date) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw", ["20261125", "2026-11-25 10:00:00", "2026/11/25", "25.11.26", "yesterday",
                                 "2026-11-25T10:00", "2026-11-25T10:00:00+0300", 20261125])
def test_dates_refused(raw: object) -> None:
    with pytest.raises(ValueError, match="is not a date") as caught:
        parse_datetime(raw, MOSCOW)
    assert "expected 2026-11-25" in str(caught.value) or "expected a string" in str(caught.value)


@pytest.mark.parametrize("raw", ["2026-13-01", "2026-02-30", "31.04.2026", "2026-11-25T25:00:00"])
def test_impossible_dates_refused(raw: str) -> None:
    with pytest.raises(ValueError, match=f'"{raw}" is not a valid date'):
        parse_date(raw)


def test_guids() -> None:
    assert parse_guid("8f14e45f-ceea-11e9-88ba-00155d003f0a") == "8f14e45f-ceea-11e9-88ba-00155d003f0a"
    assert parse_guid("8F14E45F-CEEA-11E9-88BA-00155D003F0A") == "8f14e45f-ceea-11e9-88ba-00155d003f0a"
    assert parse_guid("00000000-0000-0000-0000-000000000000") is None  # 1C's empty reference
    assert parse_guid("") is None
    assert parse_guid(None) is None


@pytest.mark.parametrize("raw", ["8f14e45f-ceea-11e9-88ba-00155d003f0", "8f14e45fceea11e988ba00155d003f0a",
                                 "{8f14e45f-ceea-11e9-88ba-00155d003f0a}", "8f14e45g-ceea-11e9-88ba-00155d003f0a",
                                 "0x14e45f-ceea-11e9-88ba-00155d003f0a", "8f14e45f-ceea-11e9-88ba--0155d003f0a", 12])
def test_bad_guids(raw: object) -> None:
    with pytest.raises(ValueError, match="is not a GUID"):
        parse_guid(raw)


def test_inn_kpp_currency() -> None:
    assert parse_inn("7701234567") == "7701234567"
    assert parse_inn("772812345678") == "772812345678"
    assert parse_inn("") is None
    for bad in ("770123456", "77012345678", "77O1234567"):
        with pytest.raises(ValueError, match="expected 10 or 12 digits"):
            parse_inn(bad)
    with pytest.raises(ValueError, match="not a string"):
        parse_inn(7701234567)  # a JSON number would lose a leading zero
    assert parse_kpp("770101001") == "770101001"
    assert parse_kpp("7701AB001") == "7701AB001"
    with pytest.raises(ValueError, match="expected 9 characters"):
        parse_kpp("77010100")
    assert parse_currency("RUB") == "RUB"
    assert parse_currency("usd") == "USD"
    assert parse_currency("") is None
    with pytest.raises(ValueError, match="not 1C's numeric code 643"):
        parse_currency("643")


def test_kinds() -> None:
    assert [parse_payment_kind(k) for k in ("bank", "cash", "card", "refund", "offset", "", None)] == [
        "bank", "cash", "card", "refund", "offset", None, None]
    assert parse_payment_kind("Bank") == "bank"
    with pytest.raises(ValueError, match='"wire" is not a payment kind: expected one of bank, card, cash'):
        parse_payment_kind("wire")
    assert [parse_document_kind(k) for k in ("invoice", "shipment", "order", "")] == [
        "invoice", "shipment", "order", None]
    with pytest.raises(ValueError, match="is not a document kind"):
        parse_document_kind("payment")


def test_text_and_header_values() -> None:
    assert parse_text("00УТ-000123") == "00УТ-000123"
    assert parse_text("") is None
    with pytest.raises(ValueError, match="123 is not a string"):
        parse_text(123)
    assert parse_format_version("1") == "1"
    assert parse_format_version(1) == "1"
    for bad in ("2", 2, "1.1", None, True):
        with pytest.raises(ValueError, match="version"):
            parse_format_version(bad)
    assert parse_mode("full") == "full"
    assert parse_mode("delta") == "delta"
    assert parse_mode("") is None
    with pytest.raises(ValueError, match='"FULL" is not a mode: expected full or delta'):
        parse_mode("FULL")
    assert parse_count("12") == 12
    assert parse_count(0) == 0
    for bad in ("-1", -1, "1.5", "", True):
        with pytest.raises(ValueError, match="is not a count"):
            parse_count(bad)
