"""A guard in front of ijson: no run of hundreds of digits reaches it.

ijson's C backend (3.6) turns an integer token into a Python int; Python refuses to convert more
digits than `sys.get_int_max_str_digits()` (4300 by default, never less than 640 when set), and
ijson does not pass that error on: the process dies of a segmentation fault. One line such as
`"debt": 1000…0` with 5000 zeros would kill the daemon, record nothing, and kill it again at the
next start. No value of an export has that many digits in a row (amounts have 15, GUIDs are hex in
groups of 12 at most), so such bytes are refused before ijson sees them, wherever they are.

Cheap enough for every byte: a run of RUN_LIMIT digits covers two consecutive bytes of a sample
taken every STEP bytes; only where two neighbouring samples are digits is the stretch between them
looked at, and runs across reads are carried over.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Final

from syncd.errors import ExportError

# Python's limit as this process has it (PYTHONINTMAXSTRDIGITS may lower it to 640); with no limit, an
# integer that long would still take quadratic time to convert.
RUN_LIMIT: Final = min(sys.get_int_max_str_digits() or 4300, 4300)
_STEP: Final = RUN_LIMIT // 2  # a run of RUN_LIMIT digits covers two consecutive samples
_DIGITS: Final = b"0123456789"
_MARK: Final = bytes(0x31 if c in _DIGITS else 0x30 for c in range(256))
_LEADING_DIGITS: Final = re.compile(rb"[0-9]*")


class DigitGuard:
    """Checks the bytes handed to ijson (`check`, read by read): ExportError at a run of RUN_LIMIT digits.

    Known counterparties the byte filters cut out never reach ijson, so only what it parses is looked
    at: the rest was looked at when it was applied."""

    def __init__(self, file: str) -> None:
        self._file = file
        self._run = 0  # digits at the end of what was checked so far
        # Set once a \u00 escape was seen: only such escapes give JSON text a control character, and the
        # bytes are checked before ijson builds the values from them.
        self.escapes = False

    def check(self, data: bytes) -> bytes:
        if data:
            self._check(data)
            if not self.escapes and 0x5C in data and b"\\u00" in data:
                self.escapes = True
        return data

    def _check(self, data: bytes) -> None:
        lead = _LEADING_DIGITS.match(data).end()  # type: ignore[union-attr]  # matches the empty string
        if lead == len(data):
            self._run += lead
            if self._run >= RUN_LIMIT:
                self._refuse()
            return
        if self._run + lead >= RUN_LIMIT:
            self._refuse()
        marks = data[::_STEP].translate(_MARK)
        at = marks.find(b"11")
        while at >= 0:
            start = at * _STEP
            if data[start:start + _STEP + 1].isdigit():
                before, after = data[max(0, start - RUN_LIMIT):start], data[start:start + 2 * RUN_LIMIT]
                left = len(before) - len(before.rstrip(_DIGITS))
                right = _LEADING_DIGITS.match(after).end()  # type: ignore[union-attr]
                if left + right >= RUN_LIMIT:
                    self._refuse()
            at = marks.find(b"11", at + 1)
        tail = data[-RUN_LIMIT:]  # (a longer run at the end was found above)
        self._run = len(tail) - len(tail.rstrip(_DIGITS))

    def _refuse(self) -> None:
        raise ExportError(self._file, f"{RUN_LIMIT} or more digits in a row: no value in an export "
                          "is that long (a number that size would also crash the JSON parser); the file is damaged "
                          "or not an export")


# What XML 1.0 cannot carry either: C0 controls but tab, line feed and carriage return. (A lone
# surrogate escape never gets here: yajl reads a high one as "?", and a low one fails to decode.)
_ODD_TEXT: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def odd_text(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    """(field, why) for each string in a value built from JSON that holds such a character."""
    if isinstance(value, str):
        found = _ODD_TEXT.search(value)
        if found is not None:
            yield path, (f"the text holds U+{ord(found.group()):04X} at character {found.start() + 1}: a control "
                         "character, which XML cannot carry and a page should not show; remove it in 1C")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from odd_text(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for number, item in enumerate(value, 1):
            yield from odd_text(item, f"{path}[{number}]")
