"""Parsers for the tolerant value formats of the export contract (docs/export-format.md, "Values").

Each parser takes the raw value as the reader found it (a str from XML or JSON, an int or Decimal
from a JSON number, None when the field is missing) and returns the typed value, or None where the
contract says the value means "absent". A bad value raises ValueError with a message that quotes
the value and says what is expected; the caller adds the file, place and field.

These run once per field of every payment, so the canonical forms take a cheap path first and only
the unusual forms (1C's `Формат()` output, Russian dates) go through regular expressions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

from syncd.contract.fields import Value
from syncd.contract.records import Mode

_CENT: Final = Decimal("0.01")
_ZERO: Final = Decimal("0.00")
# 1C money is Number(15,2): thirteen integer digits.
_AMOUNT_LIMIT: Final = Decimal("10000000000000")

# 1C's Формат()/Строка() group thousands with a no-break space (U+00A0) or, in some locales,
# a narrow no-break space (U+202F); people retyping values use a plain space.
_GROUP_MARKS: Final = " \u00a0\u202f"
_GROUPED_AMOUNT: Final = re.compile(
    rf"(-?)(\d{{1,3}}(?:[{_GROUP_MARKS}]\d{{3}})*|\d+)(?:([.,])(\d+))?", re.ASCII
)
_GROUP_SEPARATORS: Final = str.maketrans("", "", _GROUP_MARKS)

_ISO_TAIL: Final = re.compile(r"(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})?", re.ASCII)
_RU_DATETIME: Final = re.compile(r"(\d{2})\.(\d{2})\.(\d{4})(?: (\d{1,2}):(\d{2}):(\d{2}))?", re.ASCII)

_EMPTY_GUID: Final = "00000000-0000-0000-0000-000000000000"
_EMPTY_DATETIME: Final = "0001-01-01T00:00:00"
_HEX: Final = "0123456789abcdef"
_EMPTY_DATES: Final = frozenset({"0001-01-01", "0001-01-01T00:00:00", "01.01.0001", "01.01.0001 0:00:00",
                                 "01.01.0001 00:00:00"})

PAYMENT_KINDS: Final = frozenset({"bank", "cash", "card", "refund", "offset"})
DOCUMENT_KINDS: Final = frozenset({"invoice", "shipment", "order"})


def show(value: object) -> str:
    """The value as a user should see it in a message: strings quoted, long ones cut."""
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return '"' + text.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return str(value)


def _require_str(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"{show(value)} is not {what}: expected a string")


def parse_amount(value: object) -> Decimal | None:
    """An amount: `12345.67`, `12 345,67`, a JSON number; more than two decimals rounded half up.

    The empty string and None mean absent. The result always has two decimals.
    """
    if type(value) is str:
        # 1C's XDTO writes exactly this: digits, a dot, two digits. Nothing to round or range-check.
        whole, _dot, cents = value.partition(".")
        if len(cents) == 2 and 0 < len(whole) <= 13 and whole.isdigit() and cents.isdigit() and value.isascii():
            return Decimal(value)
        formatted = _formatted_amount(value)
        if formatted is not None:
            return formatted
    return _parse_amount(value)


def _formatted_amount(value: str) -> Decimal | None:
    """What 1C's Формат() writes, `12 345,67` (a comma, two kopecks, thousands split by one kind of
    space or not at all, no sign), at half the regular expression's cost; None for anything else.

    With the separator taken out, the digits must be as many as the groups need, and every fourth
    character leftwards from the comma must be that separator: then it stands exactly between groups.
    """
    if len(value) < 4 or value[-3] != ",":
        return None
    whole, cents = value[:-3], value[-2:]
    if not (cents.isdigit() and cents.isascii()):
        return None
    digits = whole
    if len(whole) > 4 and whole[-4] in _GROUP_MARKS:
        mark = whole[-4]
        digits = whole.replace(mark, "")
        gaps = (len(digits) - 1) // 3
        if len(whole) != len(digits) + gaps or whole[-4::-4] != mark * gaps:
            return None
    if not (0 < len(digits) <= 13 and digits.isdigit() and digits.isascii()):
        return None
    return Decimal(digits + "." + cents)


def _parse_amount(value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        number = _parse_grouped_amount(value, text)
    elif isinstance(value, bool):
        raise ValueError(f"{show(value)} is not an amount: expected a number such as 12345.67")
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        # ijson gives a Decimal exactly as written; a positive exponent means 12e3-style notation.
        exponent = value.as_tuple().exponent
        if not value.is_finite() or (isinstance(exponent, int) and exponent > 0):
            raise ValueError(f"{show(value)} is not an amount: exponent notation is not accepted")
        number = value
    elif isinstance(value, float):
        # Only reachable from callers that parsed JSON with floats; repr() is the shortest text that
        # round-trips, i.e. the digits as written.
        number = Decimal(repr(value))
    else:
        raise ValueError(f"{show(value)} is not an amount: expected a number such as 12345.67")
    if not -_AMOUNT_LIMIT < number < _AMOUNT_LIMIT:
        raise ValueError(f"{show(value)} is out of range: 1C money has at most 13 digits before the point")
    rounded = number.quantize(_CENT, rounding=ROUND_HALF_UP)
    return rounded if rounded else _ZERO  # no "-0.00"


def _parse_grouped_amount(value: str, text: str) -> Decimal:
    match = _GROUPED_AMOUNT.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{show(value)} is not an amount: expected digits with a dot or comma before the kopecks, "
            "such as 12345.67 or 12 345,67 (no exponent, no dot between thousands)"
        )
    sign, whole, _, fraction = match.groups()
    digits = whole.translate(_GROUP_SEPARATORS)
    try:
        return Decimal(f"{sign}{digits}.{fraction or '0'}")
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        raise ValueError(f"{show(value)} is not an amount") from None


def non_negative(amount: Decimal) -> Decimal:
    if amount < 0:
        raise ValueError(f"{amount} is negative: expected 0 or more")
    return amount


def non_zero(amount: Decimal) -> Decimal:
    if not amount:
        raise ValueError("0 is not a payment sum: expected a non-zero amount (a refund is negative)")
    return amount


def _date_error(value: object) -> ValueError:
    return ValueError(
        f"{show(value)} is not a date: expected 2026-11-25, 2026-11-25T10:00:00[+03:00] "
        "or 25.11.2026[ 10:00:00]"
    )


def _split_datetime(value: object) -> tuple[date, time | None, tzinfo | None] | None:
    """(date, time or None if only a date was written, offset or None) or None for the empty date."""
    text = _require_str(value, "a date").strip()
    if not text or text in _EMPTY_DATES:
        return None
    n = len(text)
    try:
        if n == 10 and text[4] == "-" and text[7] == "-" and text.isascii():
            return date.fromisoformat(text), None, None
        if n >= 19 and text[10] == "T" and text[4] == "-" and text[13] == ":" and text[16] == ":":
            if n > 19 and _ISO_TAIL.fullmatch(text, 19) is None:
                raise _date_error(value)
            moment = datetime.fromisoformat(text)
        else:
            match = _RU_DATETIME.fullmatch(text)
            if match is None:
                raise _date_error(value)
            day, month, year, hour, minute, second = match.groups()
            if hour is None:
                return date(int(year), int(month), int(day)), None, None
            moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError as e:
        if str(e).startswith(show(value)):
            raise
        raise ValueError(f"{show(value)} is not a valid date: {e}") from None
    if moment.year == 1 and moment.month == 1 and moment.day == 1 and not moment.time():
        return None
    return moment.date(), moment.timetz(), moment.tzinfo


def _is_iso_datetime(text: str) -> bool:
    return (len(text) == 19 and text[10] == "T" and text[4] == "-" and text[7] == "-" and text[13] == ":"
            and text[16] == ":" and text.isascii())


def parse_date(value: object) -> date | None:
    """A date; a datetime gives its date as written. Empty and 0001-01-01 mean absent; a date before
    1000-01-01 (which a MySQL DATE does not hold) is refused."""
    if type(value) is str:
        # Fast paths for what 1C writes: 2026-11-25, and 2026-11-25T00:00:00 from XDTO. A year from
        # 1000 on starts with another digit than 0.
        try:
            if len(value) == 10 and value[4] == "-" and value[7] == "-" and value.isascii() and value[0] != "0":
                return date.fromisoformat(value)
            if _is_iso_datetime(value) and value[0] != "0":
                return datetime.fromisoformat(value).date()
        except ValueError:
            pass  # reported with the full explanation below
    elif value is None:
        return None
    parts = _split_datetime(value)
    if parts is None:
        return None
    if parts[0].year < 1000:
        raise ValueError(f"{show(value)} is out of range: syncd stores dates from 1000-01-01 to 9999-12-31 "
                         "(MySQL DATE); 1C's empty date is 0001-01-01")
    return parts[0]


def parse_datetime(value: object, source_tz: tzinfo) -> datetime | None:
    """An aware datetime. No offset: the 1C infobase's zone. A date alone: midnight there."""
    text = value
    if type(value) is str and len(value) == 19 and value[10] == " " and value[2] == "." and value[5] == ".":
        # 1C's Строка() of a date, 25.11.2026 10:00:00: the ISO text it stands for takes the short way.
        text = f"{value[6:10]}-{value[3:5]}-{value[:2]}T{value[11:]}"
    if type(text) is str and _is_iso_datetime(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass  # reported with the full explanation below
        else:
            if text == _EMPTY_DATETIME:
                return None
            # The constructor is several times cheaper than moment.replace(tzinfo=…) on CPython 3.11.
            return datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
                            0, source_tz)
    elif value is None:
        return None
    parts = _split_datetime(value)
    if parts is None:
        return None
    day, clock, offset = parts
    if clock is None:
        return datetime.combine(day, time(), source_tz)
    if offset is None:
        return datetime.combine(day, clock.replace(tzinfo=None), source_tz)
    return datetime.combine(day, clock)


def parse_guid(value: object) -> str | None:
    """A GUID in lower case; the all-zero GUID (1C's empty reference) and "" mean absent."""
    if type(value) is str:
        text = value.lower()
        # Cheaper than a regular expression: four dashes in place, and nothing but hex digits between.
        if (len(text) == 36 and text[8] == "-" and text[13] == "-" and text[18] == "-" and text[23] == "-"
                and not text.replace("-", "", 4).strip(_HEX)):
            return None if text == _EMPTY_GUID else text
        if not text.strip():
            return None
    elif value is None:
        return None
    raise ValueError(
        f"{show(value)} is not a GUID: expected 8-4-4-4-12 hex digits, "
        "such as 8f14e45f-ceea-11e9-88ba-00155d003f0a"
    )


def parse_text(value: object) -> str | None:
    """A free text field; "" means absent. JSON numbers are refused: they lose leading zeros."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{show(value)} is not a string: write it in quotes, as 1C shows it")
    return value or None


def parse_inn(value: object) -> str | None:
    text = parse_text(value)
    if text is None:
        return None
    text = text.strip()
    if len(text) not in (10, 12) or not (text.isdigit() and text.isascii()):
        raise ValueError(f"{show(value)} is not an INN: expected 10 or 12 digits")
    return text


def parse_kpp(value: object) -> str | None:
    text = parse_text(value)
    if text is None:
        return None
    text = text.strip()
    # Since 2019 positions 5-6 of a KPP may be Latin capitals, so only the length and the alphabet
    # are checked.
    if len(text) != 9 or not (text.isalnum() and text.isascii()):
        raise ValueError(f"{show(value)} is not a KPP: expected 9 characters (digits, Latin capitals)")
    return text.upper()


def parse_currency(value: object) -> str | None:
    text = parse_text(value)
    if text is None:
        return None
    text = text.strip()
    if len(text) != 3 or not (text.isalpha() and text.isascii()):
        raise ValueError(
            f"{show(value)} is not a currency: expected three ISO 4217 letters such as RUB "
            "(not 1C's numeric code 643)"
        )
    return text.upper()


def _parse_choice(value: object, allowed: frozenset[str], what: str) -> str | None:
    if value in allowed:  # as 1C writes it: lower case, no spaces
        return value
    text = parse_text(value)
    if text is None:
        return None
    kind = text.strip().lower()
    if kind not in allowed:
        raise ValueError(f"{show(value)} is not a {what}: expected one of {', '.join(sorted(allowed))} or empty")
    return kind


def parse_payment_kind(value: object) -> str | None:
    return _parse_choice(value, PAYMENT_KINDS, "payment kind")


def parse_document_kind(value: object) -> str | None:
    return _parse_choice(value, DOCUMENT_KINDS, "document kind")


def parse_format_version(value: object) -> str:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{show(value)} is not a supported format version: expected 1")
    text = value.strip() if isinstance(value, str) else str(value)
    if text != "1":
        raise ValueError(f"format version {show(value)} is not supported: this syncd reads version 1")
    return "1"


def parse_mode(value: object) -> Mode | None:
    text = parse_text(value)
    if text is None:
        return None
    if text == "full":
        return "full"
    if text == "delta":
        return "delta"
    raise ValueError(f"{show(value)} is not a mode: expected full or delta")


def parse_count(value: object) -> int:
    """A count in the Summary: a whole number ≥ 0, as a string or a JSON number."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        number = int(value)
    else:
        raise ValueError(f"{show(value)} is not a count: expected a whole number such as 120")
    if number < 0:
        raise ValueError(f"{show(value)} is not a count: expected 0 or more")
    return number


def show_character(ch: str) -> str:
    code = f"U+{ord(ch):04X}"
    return f"'{ch}' ({code})" if ch.isprintable() and not ch.isspace() else code


def storable(raw: object, moment: datetime | None, bitrix_tz: tzinfo) -> datetime | None:
    """`moment` when it converts to UTC (the ledger) and to the site's zone (the blocks) within what a
    MySQL DATETIME holds; a ValueError naming `raw` otherwise.

    Python's offsets are under 24 hours, so a moment dated between 1001 and 9998 converts within
    1000-01-01..9999-12-31 to any zone: only those years pay for the conversion (once per payment).
    """
    if moment is None or 1000 < moment.year < 9999:
        return moment
    try:
        fits = min(moment.astimezone(UTC).year, moment.astimezone(bitrix_tz).year) >= 1000
    except OverflowError:
        fits = False
    if not fits:
        raise ValueError(
            f"{show(raw)} is out of range: syncd stores times from 1000-01-01 to 9999-12-31 (MySQL DATETIME) "
            f"in UTC and in bitrix.timezone {bitrix_tz}; 1C's empty date is 0001-01-01T00:00:00")
    return moment


Parser = Callable[[object], object]

# How each value kind of the field table (syncd.contract.fields) is parsed, but "datetime": that one
# needs the file's zones (parsers()).
PARSERS: Final[Mapping[Value, Parser]] = {
    "guid": parse_guid, "amount": parse_amount, "text": parse_text, "date": parse_date,
    "currency": parse_currency, "inn": parse_inn, "kpp": parse_kpp, "payment_kind": parse_payment_kind,
    "document_kind": parse_document_kind,
}


def parsers(source_tz: tzinfo, bitrix_tz: tzinfo) -> dict[Value, Parser]:
    """Every value kind's parser for one file: a datetime without an offset is in `source_tz`, and every
    datetime must convert to `bitrix_tz` (storable)."""
    return {**PARSERS, "datetime": lambda v: storable(v, parse_datetime(v, source_tz), bitrix_tz)}
