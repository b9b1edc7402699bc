"""Bounds on what one export may make syncd hold or do (`[limits]` in the configuration).

A few hundred bytes of gzip can expand to gigabytes, and a parser handed a million nested brackets,
a string of half a gigabyte or one endless counterparty holds it all in memory before it can say
anything; on a shop's server the kernel then kills whatever is biggest, maybe the database. syncd
counts these in the decompressed bytes before any parser sees them (syncd.formats.guard) and refuses
the file at the first limit it passes, naming the limit and how to raise it. The defaults are far
beyond real exports (1C writes 3-11 KB per counterparty, five levels of nesting, values of a few
hundred bytes; the largest real exports are a few hundred MB at 5-15:1 in gzip).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Final

from syncd.errors import ExportError

KIB: Final = 1 << 10
MIB: Final = 1 << 20
GIB: Final = 1 << 30


@dataclass(frozen=True)
class Limits:
    # Nesting of JSON objects and arrays; an export needs five (XML: libxml2 stops at 256 levels).
    max_depth: int = 32
    # Decompressed bytes per counterparty, and for the header before the first one. 8 MiB is ~60,000
    # payments; lxml's tree of a counterparty takes ~12 bytes per byte of XML, so it also bounds memory.
    max_counterparty_size: int = 8 * MIB
    # Decompressed bytes of one value: a JSON string or number, an XML text or attribute value.
    max_value_size: int = 1 * MIB
    # Bytes a .gz or .zip expands to, and how many times its compressed size (checked past 16 MiB).
    max_expanded_size: int = 4 * GIB
    max_expansion_ratio: int = 200


DEFAULT: Final = Limits()
_SIZES: Final = frozenset({"max_counterparty_size", "max_value_size", "max_expanded_size"})
_MIN_COUNTERPARTY: Final = 2 * MIB
_SIZE: Final = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$", re.IGNORECASE)
_UNIT: Final = {"b": 1, "kib": KIB, "mib": MIB, "gib": GIB, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def parse_size(text: str) -> int:
    """`16MiB`, `512KiB`, `4GiB`, `1000000` (bytes); KB/MB/GB are powers of 1000."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (expected e.g. 8MiB, 512KiB, 4GiB or a number of bytes)")
    size = int(match.group(1)) * _UNIT[(match.group(2) or "b").lower()]
    if size <= 0:
        raise ValueError(f"{text!r}: a limit must be above zero")
    return size


def show(key: str, value: int) -> str:
    """A limit's value as the configuration would spell it."""
    if key not in _SIZES:
        return str(value)
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if value % unit == 0:
            return f'"{value // unit}{name}"'
    return str(value)


def parse_limit(key: str, value: object) -> int:
    """A [limits] value (a size string or a positive integer); ValueError naming what is wrong."""
    if key not in {f.name for f in fields(Limits)}:
        names = ", ".join(f.name for f in fields(Limits))
        raise ValueError(f"unknown limit {key!r} (expected one of {names})")
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{key} must be above zero, got {value}")
        size = value
    elif isinstance(value, str) and key in _SIZES:
        size = parse_size(value)
    else:
        kind = "a size such as \"8MiB\" or a number of bytes" if key in _SIZES else "a whole number above zero"
        raise ValueError(f"{key} must be {kind}, got {value!r}")
    if key == "max_counterparty_size" and size < _MIN_COUNTERPARTY:
        # Readers and filters take 1 MiB at a time; a counterparty is counted from a read's end.
        raise ValueError(f"{key} must be at least \"2MiB\", got {value!r}")
    return size


def exceeded(file: str, what: str, key: str, value: int, where: str | None) -> ExportError:
    """The refusal of a file past a limit: what, which limit and its value, and how to raise it."""
    return ExportError(
        file, f"{what}: over the limit {key} = {show(key, value)}, so the file is refused before it is "
              f"read further. Real exports stay far below it; if this one is genuine, raise {key} in [limits] "
              f"of the configuration (syncd validate: --limit {key}=VALUE)", where=where)
