"""Keys written twice in one JSON object, which ijson's builder would silently lose.

ijson's C `items` pipeline (syncd.formats.json) builds dicts, and a dict keeps the last value of a
key written twice: `{"debt": 1000, "debt": 0}` reads as a debt of 0. The contract allows each key
once, so such a file must be refused, naming the record and the key. Looking at every key through
parse events in Python would cost more than the whole build, so the check is a count:

- `KeyCount` bounds the keys in the bytes handed to the builder from above: every key ends with a
  quote, then optional whitespace, then its colon. All whitespace goes (one translate) and each `":`
  left is counted: every key once, and besides only a colon that starts a string (after its opening
  quote, or after an escaped quote `\"` not preceded by another backslash, which are taken back). A
  colon inside a string otherwise follows another character, such as a datetime's digits.
- the reader adds up the keys of the dicts it was given (the counterparty, its lastPayment, its
  payments and documents), never more than the keys in the bytes.

Equal counts: no key was lost. Different counts: a key may have been lost, or a string starts with a
colon, or a dict sits where the reader does not count (an object inside an unknown key);
`duplicate_keys()` then reads the file once more
through parse events and names each key written twice in a counterparty, payment, document or
lastPayment, so a mismatch never becomes a reported problem by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import ijson
from ijson.common import JSONError

from syncd.contract.fields import COUNTERPARTY, COUNTERPARTY_PARTS
from syncd.contract.raw import counterparty_label
from syncd.formats.bytesource import ByteSource
from syncd.formats.jsonguard import DigitGuard

_WHITESPACE: Final = b" \t\r\n\v\f"  # \v and \f too: ijson (yajl) takes them for whitespace
_CHUNK: Final = 1 << 16
COUNTERPARTY_KEYS: Final = frozenset({*COUNTERPARTY.keys, *COUNTERPARTY_PARTS})
_ITEM: Final = "counterparties.item"
# The objects of the contract inside a counterparty, by their ijson prefix: what a key twice is called.
_OWNERS: Final = {_ITEM: "counterparty", _ITEM + ".lastPayment": "lastPayment",
                  _ITEM + ".payments.item": "payment", _ITEM + ".openDocuments.item": "document"}


class KeyCount:
    """At least as many as the keys in JSON bytes fed in pieces, from the start of a value; as many
    unless a string starts with a colon (module docstring)."""

    __slots__ = ("_last", "keys")

    def __init__(self) -> None:
        self.keys = 0
        self._last = 0  # the last byte (whitespace aside) of the last piece

    def feed(self, data: bytes) -> None:
        self.keys += self._count(data)

    def unfeed_rest(self, rest: bytes) -> None:
        """Take back the keys of `rest`, the end of the last piece fed, which starts just after the value
        ended (after a "]", so no `":` spans its start): they belong to what follows the value."""
        self.keys -= KeyCount()._count(rest)

    def _count(self, data: bytes) -> int:
        skeleton = data.translate(None, _WHITESPACE)
        if not skeleton:
            return 0
        count = skeleton.count(b'":')
        first, last = skeleton[0], self._last
        if last == 0x22 and first == 0x3A:
            count += 1  # a quote at the end of the last piece, its colon at the start of this one
        if 0x5C in skeleton:  # a backslash: `\":` is an escaped quote and a colon, inside a string
            escaped = skeleton.count(b'\\":')
            if escaped:
                count -= escaped - skeleton.count(b'\\\\":')
                if last == 0x5C and skeleton.startswith(b'\\":'):
                    count += 1  # the backslash before it, in the last piece, escaped this one
        self._last = skeleton[-1]
        return count


def built_keys(item: dict[str, object]) -> int:
    """The keys of a counterparty ijson built, with those of its lastPayment, payments and documents;
    -1 when one of these is not what it should be (the full look, `duplicate_keys`, then decides)."""
    count = len(item)
    if not COUNTERPARTY_KEYS.issuperset(item):
        # An unknown key 1C added may hold an object: its keys are in the bytes too.
        count += sum(_nested_keys(value) for key, value in item.items() if key not in COUNTERPARTY_KEYS)
    last = item.get("lastPayment")
    if type(last) is dict:
        count += len(last)
    for key in ("payments", "openDocuments"):
        items = item.get(key)
        if type(items) is list:
            try:
                count += sum(map(len, items))
            except TypeError:  # a number or null among them: reported by the checks
                return -1
    return count


def _nested_keys(value: object) -> int:
    if type(value) is dict:
        return len(value) + sum(_nested_keys(item) for item in value.values())
    if type(value) is list:
        return sum(_nested_keys(item) for item in value)
    return 0


def duplicate_keys(stream: ByteSource) -> Iterator[tuple[str, str]]:
    """(where, key) for each key written twice in a counterparty or one of its objects, in file order."""
    events = ijson.parse(_Reader(stream), use_float=False)
    index = 0
    ident: object = None
    numbers: dict[str, int] = {}
    open_keys: list[set[str] | None] = []
    pending: list[tuple[str, int, str]] = []  # found before the counterparty's id is known
    try:
        for prefix, event, value in events:
            if event == "map_key":
                keys = open_keys[-1] if open_keys else None
                if keys is not None:
                    if value in keys:
                        pending.append((_OWNERS[prefix], numbers.get(prefix, 0), value))
                    keys.add(value)
                if prefix == _ITEM and value == "id":
                    ident = None
            elif event == "start_map":
                open_keys.append(set() if prefix in _OWNERS else None)
                if prefix == _ITEM:
                    index, ident, numbers = index + 1, None, {}
                elif prefix in _OWNERS:
                    numbers[prefix] = numbers.get(prefix, 0) + 1
            elif event == "end_map":
                open_keys.pop()
                if prefix == _ITEM:
                    yield from _named(pending, index, ident)
                    pending.clear()
            elif prefix == _ITEM + ".id" and ident is None:
                ident = value
    except (JSONError, UnicodeDecodeError):
        return  # the first read reported it


def _named(found: list[tuple[str, int, str]], index: int, ident: object) -> Iterator[tuple[str, str]]:
    label = counterparty_label(index, ident)
    for owner, number, key in found:
        if owner == "counterparty":
            yield label, key
        elif owner == "lastPayment":
            yield label, f"lastPayment.{key}"
        else:
            yield f"{owner} #{number} of {label}", key


class _Reader:
    """The stream as a file for ijson, with a UTF-8 BOM taken off, past the guard."""

    def __init__(self, stream: ByteSource) -> None:
        self._stream = stream
        self._first = True
        self._guard = DigitGuard("")

    def read(self, size: int = _CHUNK) -> bytes:
        data = self._guard.check(self._stream.read(size))
        if self._first:
            self._first = False
            if data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
        return data
