"""PHP serialize()/unserialize() for the values Bitrix keeps in b_user_field.SETTINGS.

Bitrix reads SETTINGS with unserialize(); a single wrong string length makes it return false and
the field loses its settings (PRECISION falls back to 0, so money shows rounded to whole units).
PHP counts string lengths in bytes, so everything here works on the UTF-8 encoding.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

PhpKey: TypeAlias = int | str
# Mapping keys are invariant, so a dict[str, …] would not fit Mapping[PhpKey, …]; keys are checked at run time.
PhpValue: TypeAlias = "bool | int | float | str | Mapping[Any, PhpValue] | Sequence[PhpValue] | None"
# What unserialize gives back: PHP arrays always come back as dicts (PHP has no list type).
PhpData: TypeAlias = "bool | int | float | str | dict[PhpKey, PhpData] | None"


class PhpSerializeError(ValueError):
    """The text is not a PHP serialization this module understands."""


def _float(value: float) -> str:
    # PHP >= 7.1 writes the shortest round-trip form (serialize_precision = -1) and drops ".0"
    # from whole numbers: 0.0 -> "0", 2.5 -> "2.5", 1e25 -> "1.0E+25".
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        sign = "-" if exp.startswith("-") else "+"
        text = f"{mantissa}E{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return text


def _key(key: object) -> str:
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise PhpSerializeError(f"PHP array keys are int or str, got {type(key).__name__}")
    return _value(key)


def _value(value: object) -> str:
    if value is None:
        return "N;"
    if isinstance(value, bool):
        return f"b:{int(value)};"
    if isinstance(value, int):
        return f"i:{value};"
    if isinstance(value, float):
        return f"d:{_float(value)};"
    if isinstance(value, str):
        return f's:{len(value.encode("utf-8"))}:"{value}";'
    if isinstance(value, Mapping):
        items = "".join(_key(k) + _value(v) for k, v in value.items())
        return f"a:{len(value)}:{{{items}}}"
    if isinstance(value, Sequence):
        items = "".join(f"i:{i};" + _value(v) for i, v in enumerate(value))
        return f"a:{len(value)}:{{{items}}}"
    raise PhpSerializeError(f"cannot serialize a {type(value).__name__} for PHP")


def serialize(value: PhpValue) -> str:
    """The text PHP's serialize() produces for VALUE (a list/tuple becomes an array keyed 0, 1, …)."""
    return _value(value)


_INT = re.compile(rb"-?\d+")
_FLOAT = re.compile(rb"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|-?INF|NAN")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, what: str) -> PhpSerializeError:
        return PhpSerializeError(f"not a PHP serialization: {what} at byte {self.pos}")

    def expect(self, token: bytes) -> None:
        if not self.data.startswith(token, self.pos):
            raise self.fail(f"expected {token.decode()!r}")
        self.pos += len(token)

    def until(self, stop: bytes, pattern: re.Pattern[bytes]) -> bytes:
        end = self.data.find(stop, self.pos)
        if end < 0:
            raise self.fail(f"expected {stop.decode()!r}")
        raw = self.data[self.pos:end]
        if not pattern.fullmatch(raw):
            raise self.fail(f"bad number {raw!r}")
        self.pos = end + len(stop)
        return raw

    def value(self) -> PhpData:
        tag = self.data[self.pos:self.pos + 2]
        if self.data.startswith(b"N;", self.pos):
            self.pos += 2
            return None
        self.pos += 2
        if tag == b"b:":
            raw = self.until(b";", re.compile(rb"[01]"))
            return raw == b"1"
        if tag == b"i:":
            return int(self.until(b";", _INT))
        if tag == b"d:":
            return float(self.until(b";", _FLOAT).decode().replace("NAN", "nan"))
        if tag == b"s:":
            length = int(self.until(b":", _INT))
            self.expect(b'"')
            raw = self.data[self.pos:self.pos + length]
            if length < 0 or len(raw) != length:
                raise self.fail("string shorter than its length")
            self.pos += length
            self.expect(b'";')
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail("string length does not fall on a UTF-8 character boundary") from None
        if tag == b"a:":
            count = int(self.until(b":", _INT))
            self.expect(b"{")
            result: dict[PhpKey, PhpData] = {}
            for _ in range(count):
                key = self.value()
                if not isinstance(key, int | str) or isinstance(key, bool):
                    raise self.fail("array key is not int or string")
                result[key] = self.value()
            self.expect(b"}")
            return result
        self.pos -= 2
        raise self.fail(f"unsupported type {tag.decode(errors='replace')!r}")


def unserialize(data: str | bytes) -> PhpData:
    """Read what serialize() wrote: null, bool, int, float, string and arrays (as dicts).

    Objects and references are refused: Bitrix field settings never hold them.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    reader = _Reader(raw)
    value = reader.value()
    if reader.pos != len(raw):
        raise reader.fail("trailing data")
    return value
