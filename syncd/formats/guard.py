"""The limits of syncd.contract.limits, counted in the decompressed bytes before any parser or filter reads them.

`Guard.scan()` sees every block a reader or byte filter takes from the stream, in order, and raises
ExportError at the first limit passed; so no parser ever holds more than a limit's worth of a hostile
file. Everything is counted per block with C-speed bytes methods; nothing here loops over bytes in
Python on a normal file.

- Bytes per counterparty: the bytes handed out since the reader last finished a counterparty
  (`counterparty_done()`), or since the start for the header. This bounds what ijson's builder or
  lxml's tree can hold at once, and the byte filters' buffers, whatever the bytes are. Each node
  counts as at least NODE_BYTES: a tree of tiny nodes weighs 100-250 bytes a node in lxml or
  ijson (measured: 8 MiB of `<a b="" c=""/>` took 385 MB, of `{"":""},` 236 MB). A node is a `<`
  or `=` in XML (an element or attribute; text and attribute values may hold neither unescaped,
  comments may), a `,` or bracket in JSON (a value after the first in an array or object, an
  object's or array's start and end; strings may hold them too, which only adds weight). 1C writes
  one per 20-40 bytes, so a real counterparty weighs its size.
- Bytes per value: the longest run without a `"` (JSON) or a `<` (XML). A JSON string or number, an
  XML text or attribute value (where `<` may not appear) is inside such a run. A JSON string that
  hides its length behind escaped quotes is bounded by the counterparty limit instead.
- JSON nesting: ijson keeps a path string per level, so memory grows with the square of the depth.
  Per block: escapes and strings are dropped, brackets mapped to `[`/`]`; removing `[]` pairs until
  none are left takes as many passes as the block's deepest closed group, and what remains is
  `]]]…[[[`. The deepest point is at most max(depth before, depth after) + passes; only when that
  bound passes the limit is the depth followed bracket by bracket (C's accumulate), so a normal
  file is never refused on the bound alone. XML nesting is libxml2's: it stops at 256 levels.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Final

from syncd.contract.limits import Limits, exceeded

# One translate both maps brackets and drops everything but brackets, quotes, commas and backslashes.
_TO_SQUARE: Final = bytes.maketrans(b"{}", b"[]")
_KEPT: Final = frozenset(b'"[]{},\\')
_NOT_STRUCTURE: Final = bytes(c for c in range(256) if c not in _KEPT)
_STEP: Final = bytes.maketrans(b"[]", b"\x01\xff")  # +1 / -1 as signed bytes
_STRING: Final = re.compile(rb'"[^"]*"')
_ESCAPE: Final = re.compile(rb"\\.", re.DOTALL)
_ESCAPES_ONE_BY_ONE: Final = 256
NODE_BYTES: Final = 16  # lxml and ijson spend 100-250 bytes on a node


class Guard:
    def __init__(self, file: str, limits: Limits, dialect: str) -> None:
        self._file = file
        self._limits = limits
        self._json = dialect == "json"
        self._stop = 0x22 if self._json else 0x3C  # '"' or '<': a value cannot run past one
        self.position = 0  # bytes handed out
        self._mark = 0  # where the counterparty being read (or the header) started
        self._nodes = 0  # nodes handed out: "," in JSON, "<" and "=" in XML
        self._nodes_mark = 0
        self._done = 0  # counterparties finished
        self._run = 0  # bytes since the last stop byte
        self._long_run = re.compile(b"[^%c]{%d}" % (self._stop, limits.max_value_size + 1))
        self._depth = 0
        self._in_string = False
        self._escaped = False  # the previous block ended in a backslash that escapes this one's first byte

    def counterparty_done(self, count: int = 1) -> None:
        """The header (the first call) or a counterparty ended before the bytes handed out from here on:
        a reader has read it whole, or a byte filter has cut it out. A filter may cut many before the
        parser reads them, but it queues no more than a read's worth for the parser."""
        self._mark = self.position
        self._nodes_mark = self._nodes
        self._done += count

    def scan(self, block: bytes) -> None:
        if not block:
            return
        start = self.position
        self.position += len(block)
        limits = self._limits
        if self._json:
            self._nesting(block, start)  # counts the nodes too
        else:
            self._nodes += block.count(b"<") + block.count(b"=")
        weight = max(self.position - self._mark, (self._nodes - self._nodes_mark) * NODE_BYTES)
        if weight > limits.max_counterparty_size:
            what = ("the header is larger" if self._done == 0 else
                    f"the counterparty after byte {self._mark:,} is larger")
            raise exceeded(self._file, f"{what} than a counterparty may be (each element, attribute or value "
                           f"counting as at least {NODE_BYTES} bytes)", "max_counterparty_size",
                           limits.max_counterparty_size, None)
        self._values(block, start)

    # -- values -----------------------------------------------------------------------------------

    def _values(self, block: bytes, start: int) -> None:
        limit = self._limits.max_value_size
        first = block.find(self._stop)
        if first < 0:
            self._run += len(block)
            if self._run > limit:
                self._too_long(start + len(block))
            return
        if self._run + first > limit:
            self._too_long(start + first)
        if len(block) > limit:  # only when configured below the size of a read
            found = self._long_run.search(block, first)
            if found is not None:
                self._too_long(start + found.end())
        self._run = len(block) - block.rfind(self._stop) - 1

    def _too_long(self, at: int) -> None:
        what = ("""a run of bytes without a '"' (a string or number""" if self._json else
                "a run of bytes without a '<' (a text or attribute value")
        raise exceeded(self._file, f"{what}, or something no export has) is longer than a value may be",
                       "max_value_size", self._limits.max_value_size, f"byte {at:,}")

    # -- JSON nesting -----------------------------------------------------------------------------

    def _nesting(self, block: bytes, start: int) -> None:
        skeleton = block.translate(_TO_SQUARE, _NOT_STRUCTURE)
        first = 0
        if self._escaped:  # the last block ended in a backslash: this one's first byte is escaped
            self._escaped, first = False, 1
            if block[0] in _KEPT:
                skeleton = skeleton[1:]
        if b"\\" in skeleton:
            skeleton = self._unescaped(block, skeleton, first)
        quotes = skeleton.count(b'"')
        self._nodes += len(skeleton) - quotes  # commas and brackets
        skeleton = skeleton.translate(None, b",")  # commas in strings would keep their quotes apart
        if self._in_string:
            skeleton = b'"' + skeleton
            quotes += 1
        self._in_string = quotes % 2 == 1
        if self._in_string:
            skeleton = skeleton[:skeleton.rfind(b'"')]
            quotes -= 1
        # When every quote pairs with the next one with nothing between, no bracket is inside a string.
        simple = skeleton.count(b'""') * 2 == quotes
        self._follow(skeleton.translate(None, b'"') if simple else _STRING.sub(b"", skeleton), start)

    def _unescaped(self, block: bytes, skeleton: bytes, first: int) -> bytes:
        """The skeleton without the escape sequences of the block (a backslash and the byte after it,
        left to right), so that no quote is left in a string but those that end it. A real export has a
        few dozen per MiB (quotes in names), matched one by one in the block and the skeleton; a block
        full of them goes to the pattern."""
        if skeleton.count(b"\\") > _ESCAPES_ONE_BY_ONE:
            text = _ESCAPE.sub(b"", block[first:])
            self._escaped = text.endswith(b"\\")
            return text.translate(_TO_SQUARE, _NOT_STRUCTURE)[:-1 if self._escaped else None]
        parts: list[bytes] = []
        kept = 0  # how much of the skeleton is decided
        at = block.find(b"\\", first)
        while at >= 0:
            mark = skeleton.find(b"\\", kept)  # the same backslash: each escape's is in the skeleton, in order
            parts.append(skeleton[kept:mark])
            if at + 1 == len(block):
                self._escaped = True
                kept = mark + 1
                break
            kept = mark + (2 if block[at + 1] in _KEPT else 1)  # the escaped byte went into the skeleton
            at = block.find(b"\\", at + 2)
        parts.append(skeleton[kept:])
        return b"".join(parts)

    def _follow(self, bare: bytes, start: int) -> None:
        """The depth after `bare` (the block's brackets outside strings, as [ and ]); refuse past the limit."""
        before, limit = self._depth, self._limits.max_depth
        rest, passes = bare, 0
        while b"[]" in rest and passes <= limit:
            rest = rest.replace(b"[]", b"")
            passes += 1
        closes = rest.count(b"]")
        after = max(0, before - closes) + len(rest) - closes
        if max(before, after) + passes > limit:
            steps = array("b", bare.translate(_STEP))
            deepest = max(accumulate(steps, initial=before))
            if deepest > limit:
                raise exceeded(self._file, f"objects and arrays nested {deepest} deep or more",
                               "max_depth", limit, f"bytes {start:,}-{self.position:,}")
            after = max(0, before + sum(steps))
        self._depth = after
