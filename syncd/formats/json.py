"""JSON exports: streamed with ijson's C backend, numbers as Decimal (never float).

ijson's C `items` builder is the fast path (a Python loop over parse events is 60% slower on a
1M-payment file), but it serves one prefix, and the top level also has the header and, after the
array, the summary. So the file is read in three phases that hand bytes over exactly:

1. the top level up to the `[` of `counterparties`, through `parse` events (a few events);
2. the array itself, fed to a C `items` pipeline as a document of its own. Chunks are cut after
   every `]`, so when the array closes, the next piece makes yajl report "trailing garbage": the
   rest of the file starts exactly at that piece;
3. the rest of the top level (`, "summary": …}`), again through `parse` events.

If a header key is missing before the array, `header()` scans the file to its end on a second
stream (header keys may in principle come last); 1C's exports put them first.
"""

from __future__ import annotations

import io
import pickle
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing
from typing import Any, Final

import ijson
from ijson.common import IncompleteJSONError, JSONError, ObjectBuilder

from syncd.contract.checks import HEADER_KEYS, Checker
from syncd.contract.raw import RawCounterparty, counterparty_label
from syncd.contract.records import Header
from syncd.errors import ExportError
from syncd.formats.bytesource import ByteSource
from syncd.formats.jsonguard import DigitGuard, odd_text
from syncd.formats.jsonkeys import COUNTERPARTY_KEYS as _COUNTERPARTY_KEYS
from syncd.formats.jsonkeys import KeyCount, built_keys, duplicate_keys
from syncd.formats.shortcut.bytefilter import Cut
from syncd.formats.shortcut.jsonsplit import KnownFilter

Opener = Callable[[], AbstractContextManager[tuple[ByteSource, str]]]

# ijson is fed 1 MiB at a time: yajl copies a token that spans reads again on every read, so a long
# value cost ~10x more in 64 KiB reads (tests/test_limits.py has the figures).
_CHUNK: Final = 1 << 20
_BOM: Final = b"\xef\xbb\xbf"
_WHITESPACE: Final = b" \t\r\n"
_SCALARS: Final = frozenset({"string", "number", "boolean", "null"})
_NEVER: Final = "\x00"  # an items prefix no JSON key path can have: parse and build nothing
_CUT_SHORT: Final = "the file ends early: it is cut short (still being written, or damaged in transfer)"


class _TopLevel:
    """Follows the top-level object through parse events: header keys, summary, stray keys."""

    def __init__(self, reader: JsonReader, *, after_array: bool) -> None:
        self.reader = reader
        self.key: str | None = None
        self.started = False  # phase 3 is fed a synthetic "{" too
        self.closed = False
        self.array_started = False
        self._summary: ObjectBuilder | None = None
        self._summary_keys: set[str] = set()
        self._depth = 0

    def event(self, prefix: str, event: str, value: Any) -> None:
        reader = self.reader
        if self._summary is not None:
            if event == "map_key" and self._depth == 1:
                if value in self._summary_keys:
                    reader.checker.problem(f"the key {value!r} appears twice in summary; each key appears at most "
                                           "once", where="summary", field=value)
                self._summary_keys.add(value)
            if event in ("start_map", "start_array"):
                self._depth += 1
            elif event in ("end_map", "end_array"):
                self._depth -= 1
            self._summary.event(event, value)
            if self._depth == 0:
                reader.summary = self._summary.value
                self._summary = None
            return
        if prefix == "":
            if event == "map_key":
                self.key = value
                if value in reader.seen_keys:
                    reader.checker.problem(f"the key {value!r} appears twice at the top level; each key appears "
                                           "at most once, and which value is meant cannot be told", field=value)
                reader.seen_keys.add(value)
            elif event == "start_map" and not self.started:
                self.started = True
            elif event == "end_map":
                self.closed = True
            else:
                raise ExportError(reader.file, "a JSON export must be one object ({…}) holding the header "
                                  "and the counterparties array")
            return
        key = self.key
        if prefix != key:
            return  # inside the value of a key that is ignored
        if key == "counterparties":
            if event != "start_array":
                reader.checker.problem("counterparties must be an array ([…])", field="counterparties")
                return
            self.array_started = True
        elif key == "summary":
            if event != "start_map":
                reader.checker.problem("summary must be an object with counterparties, payments and documents",
                                       field="summary")
                return
            self._summary = ObjectBuilder()
            self._summary.event(event, value)
            self._depth = 1
        elif key in HEADER_KEYS:
            if event in _SCALARS:
                reader.top[key] = value
            else:
                reader.checker.problem(f"{key} must be a string or a number, not an object or array", field=key)
                reader.top[key] = None
        elif event in _SCALARS or event in ("start_map", "start_array"):
            reader.checker.unknown(f"top-level key {key!r}", None)


class JsonReader:
    def __init__(self, stream: ByteSource, checker: Checker, reopen: Opener) -> None:
        self.stream = stream
        # What ijson is handed passes the guard (syncd.formats.jsonguard); the filter's, once records() has one.
        self._guard = DigitGuard(checker.file)
        self._read: Callable[[int], bytes] = self._guarded(stream.read)
        self.checker = checker
        self.file = checker.file
        self._reopen = reopen
        self.top: dict[str, object] = {}
        self.seen_keys: set[str] = set()
        self.summary: object = None
        self._rest = b""  # bytes read but not yet fed to the next phase
        self._array = False
        self._header_read = False
        self._pickle_buffer = io.BytesIO()
        self._pickler = pickle.Pickler(self._pickle_buffer, 5)
        self._pickler.fast = True  # documented as deprecated, still the C pickler's way to skip the memo
        self._keys = KeyCount()  # in the bytes of the counterparties array that ijson builds (syncd.formats.jsonkeys)

    def _guarded(self, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
        check = self._guard.check
        return lambda size: check(read(size))

    # -- phase 1 ------------------------------------------------------------------------------

    def header(self) -> Header | None:
        self._header_read = True
        self._find_array()
        if not self._array:
            self.checker.problem("there is no counterparties array: an export lists its counterparties in "
                                 '"counterparties": […] (an empty export has an empty array)',
                                 field="counterparties")
        elif not HEADER_KEYS <= self.top.keys():
            self._scan_for_late_header()
        return self.checker.header(self.top)

    def _find_array(self) -> None:
        top = _TopLevel(self, after_array=False)
        events = ijson.utils.sendable_list()
        parser = ijson.parse_coro(events, use_float=False)
        first = True
        while not top.array_started and not top.closed:
            chunk = self._read(_CHUNK)
            if first:
                chunk = chunk[3:] if chunk.startswith(_BOM) else chunk
                first = False
            if not chunk:
                self._close(parser, "at the top level")
                raise ExportError(self.file, _CUT_SHORT)
            pos = 0
            while pos < len(chunk) and not top.array_started:
                # Cut after each "[" so that the piece ending with the array's "[" is the last one fed.
                cut = chunk.find(b"[", pos)
                end = len(chunk) if cut < 0 else cut + 1
                self._send(parser, chunk[pos:end], "at the top level")
                pos = end
                for prefix, event, value in events:
                    top.event(prefix, event, value)
                    if top.array_started:
                        break
                del events[:]
            self._rest = chunk[pos:]
        self._array = top.array_started
        self.stream.counterparty_done()  # the header is read

    def _scan_for_late_header(self) -> None:
        with (closing(Checker(self.file, self.checker.source_tz, dialect="json", strict=False, quiet=True)) as quiet,
              self._reopen() as (stream, _)):
            late = JsonReader(stream, quiet, self._reopen)
            late._find_array()
            for _ in late._items(build=False):
                pass
            late._trailer()
        for key in HEADER_KEYS:
            if key not in self.top and key in late.top:
                self.top[key] = late.top[key]

    # -- phase 2 and 3 --------------------------------------------------------------------------

    def records(self) -> Iterator[RawCounterparty]:
        if not self._header_read:
            self.header()
        if not self._array:
            return
        checker = self.checker
        cuts: deque[Cut] = deque()
        if checker.known is not None:
            # Known counterparties are cut out of the bytes before ijson builds them
            # (syncd.formats.shortcut.jsonsplit).
            known_filter = KnownFilter(self.stream, self._rest, checker.known)
            self._read, self._rest, cuts = self._guarded(known_filter.read), b"", known_filter.cuts
        index = built = 0
        for item in self._items(build=True):
            index += 1
            cut = cuts.popleft() if cuts else None
            if cut is not None and cut.payment_ids is not None:
                yield cut.known_raw(index, None)  # ijson built the placeholder
                continue
            if type(item) is not dict:
                checker.tally.counterparties += 1
                checker.problem(f"{_show_kind(item)} is not a counterparty: expected an object",
                                where=f"counterparty #{index}")
                continue
            keys = built_keys(item)
            built = -1 if keys < 0 or built < 0 else built + keys
            if self._guard.escapes:
                for field, why in odd_text(item):
                    checker.problem(why, where=counterparty_label(index, item.get("id")), field=field)
            if not _COUNTERPARTY_KEYS.issuperset(item):
                for key in item:
                    if key not in _COUNTERPARTY_KEYS:
                        checker.unknown(f"key {key!r} in counterparty", f"counterparty #{index}")
            raw = RawCounterparty(index, None, item, item, item.get("lastPayment"),
                                  self._list(item, "payments", index), self._list(item, "openDocuments", index))
            if cut is not None and cut.digest is not None and cut.head == (
                    item.get("id"), item.get("inn"), item.get("kpp")):
                # Digested from its bytes by the filter, with the id, INN and KPP that ijson read.
                raw.digested, raw.known_as = (cut.cid, cut.digest), cut.known_as
            elif checker.known is not None:
                # ijson builds the same objects from the same bytes, so their pickle is as good a
                # digest input as the bytes (and ~3x cheaper than repr()).
                raw.content = self._pickled(item)
                checker.match(raw)
            yield raw
        self._trailer()
        if built != self._keys.keys:
            self._report_duplicate_keys()

    def _report_duplicate_keys(self) -> None:
        """Some key ijson read was not among those built: name each key written twice (jsonkeys)."""
        with self._reopen() as (stream, _):
            for where, key in duplicate_keys(stream):
                self.checker.problem(f"the key {key.rsplit('.', 1)[-1]!r} appears twice in this object; each key "
                                     "appears at most once, and which value is meant cannot be told",
                                     where=where, field=key)

    def _pickled(self, item: object) -> bytes:
        """pickle.dumps(item) without its memo: 6.5 against 10–12 µs a counterparty. ijson's trees
        have no cycles, so the memo only shortens repeated strings; the output is as deterministic."""
        buffer = self._pickle_buffer
        buffer.seek(0)
        buffer.truncate()
        self._pickler.dump(item)
        return buffer.getvalue()

    def _list(self, item: dict[str, Any], key: str, index: int) -> list[Any]:
        value = item.get(key)
        if value is None:
            return []
        if type(value) is not list:
            ident = item.get("id")
            self.checker.problem(f"{key} must be an array ([…])", field=key,
                                 where=counterparty_label(index, ident))
            return []
        return value

    def _items(self, *, build: bool) -> Iterator[Any]:
        """Phase 2: the counterparties array as a document of its own."""
        items = ijson.utils.sendable_list()
        parser = ijson.items_coro(items, "item" if build else _NEVER, use_float=False)
        chunk = b"[" + self._rest
        done = 0
        count = self._keys.feed if build else None
        while True:
            if count is not None:
                count(chunk)
            pos = 0
            while pos < len(chunk):
                cut = chunk.find(b"]", pos)
                end = len(chunk) if cut < 0 else cut + 1
                try:
                    parser.send(chunk[pos:end])
                except IncompleteJSONError as e:
                    if "trailing garbage" in str(e):
                        self._rest = chunk[pos:]
                        if count is not None:
                            self._keys.unfeed_rest(self._rest)
                        yield from items
                        return
                    raise self._syntax(e, f"counterparty #{done + len(items) + 1}") from None
                except (JSONError, UnicodeDecodeError) as e:
                    raise self._syntax(e, f"counterparty #{done + len(items) + 1}") from None
                pos = end
                if items:
                    self.stream.counterparty_done()
                    yield from items
                    done += len(items)
                    del items[:]
            if not build:
                self.stream.counterparty_done()  # nothing is built: no counterparty is held
            chunk = self._read(_CHUNK)
            if not chunk:
                # The array or the object around it is not closed: the file is cut short.
                raise ExportError(self.file, _CUT_SHORT, where=f"counterparty #{done + 1}" if done else None)

    def _trailer(self) -> None:
        """Phase 3: what follows the array, up to the closing brace."""
        rest = self._rest.lstrip(_WHITESPACE)
        while not rest:
            more = self._read(_CHUNK)
            if not more:
                raise ExportError(self.file, _CUT_SHORT)
            rest = more.lstrip(_WHITESPACE)
        if rest[:1] == b",":
            rest = b"{" + rest[1:]
        elif rest[:1] == b"}":
            rest = b"{" + rest
        else:
            raise ExportError(self.file, f"not valid JSON after the counterparties array: expected , or }} "
                              f"but found {rest[:20].decode('utf-8', 'replace')!r}")
        top = _TopLevel(self, after_array=True)
        top.key = "counterparties"
        events = ijson.utils.sendable_list()
        parser = ijson.parse_coro(events, use_float=False)
        where = "after the counterparties array"
        while rest:
            self._send(parser, rest, where)
            for prefix, event, value in events:
                top.event(prefix, event, value)
            del events[:]
            rest = self._read(_CHUNK)
        self._close(parser, where)
        if self.summary is not None:
            if type(self.summary) is dict:
                self.checker.set_summary(self.summary, where="summary", owner="summary")
            else:  # pragma: no cover - _TopLevel only builds objects
                self.checker.problem("summary must be an object", field="summary")

    # -- errors ---------------------------------------------------------------------------------

    def _send(self, parser: Any, data: bytes, where: str) -> None:
        try:
            parser.send(data)
        except (JSONError, UnicodeDecodeError) as e:
            raise self._syntax(e, where) from None

    def _close(self, parser: Any, where: str) -> None:
        try:
            parser.close()
        except (JSONError, UnicodeDecodeError) as e:
            raise self._syntax(e, where) from None

    def _syntax(self, error: JSONError | UnicodeDecodeError, where: str) -> ExportError:
        if isinstance(error, UnicodeDecodeError):
            # yajl decodes a \udc00–\udfff escape without a high surrogate before it into bytes that are
            # not UTF-8, and ijson fails to decode them (a lone high surrogate it reads as "?").
            return ExportError(self.file, "not valid JSON text: a string holds a \\u escape of a lone UTF-16 "
                               "surrogate (\\udc00–\\udfff without its pair), which is not a character", where=where)
        raw = error.args[0] if error.args else ""
        # yajl's message is bytes: a first line, then the text around the error and a pointer.
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if "premature EOF" in text:
            return ExportError(self.file, _CUT_SHORT, where=where)
        lines = text.splitlines()
        first = lines[0].strip() if lines else "invalid JSON"
        near = f" near {lines[1].strip()[:40]!r}" if len(lines) > 1 and lines[1].strip() else ""
        return ExportError(self.file, f"not valid JSON: {first}{near}", where=where)


def _show_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number" if not isinstance(value, bool) else "a boolean"
