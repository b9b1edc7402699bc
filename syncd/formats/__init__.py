"""Export files (format v1, see docs/export-format.md): XML or JSON, plain, .gz or single-file .zip.

Public functions (the rest of syncd uses only these):

- `read_header(path, name=…, source_tz=…) -> Header`: the header alone, cheap for XML.
- `open_export(path, name=…, source_tz=…)`: a context manager giving an `Export` whose
  `counterparties()` streams validated `Counterparty` records. It raises `ExportError` at the
  first problem, including, after the last record, a summary count mismatch or an id seen twice.
  Memory does not grow with the file. `changes(known)` streams the same, except that a
  counterparty whose digest the writer already holds comes out as `Unchanged`: its ids are checked,
  its values are not parsed (the writer only confirms its rows).

`name` is the file name used in messages; `source_tz` is the zone of naive datetimes; `bitrix_tz`
(default: `source_tz`) the site's, to which every datetime must convert (syncd.contract.values.storable).

Compression and format are told by the content, not the file name: 1C jobs and admins rename
files, and a `.xml` that is really gzip must still be read.

The readers: `xml` (lxml, one counterparty element at a time) and `json` (ijson events; `jsonkeys` finds
a key written twice, `jsonguard` refuses numbers ijson cannot take). `guard` counts the decompressed
bytes against the [limits]; `bytesource` is the stream they all read. `shortcut` cuts counterparties
syncd applied before out of the bytes, unparsed.
"""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, closing, contextmanager
from datetime import tzinfo
from pathlib import Path
from typing import IO, Final, Protocol, cast

from syncd.contract.checks import Checker, changes_of, records_of
from syncd.contract.limits import DEFAULT, Limits, exceeded
from syncd.contract.raw import Capacity, Dialect, KnownDigests, RawCounterparty
from syncd.contract.records import Counterparty, Header, Unchanged
from syncd.errors import ExportError
from syncd.formats.guard import Guard
from syncd.formats.json import JsonReader
from syncd.formats.xml import XmlReader

__all__ = ["Export", "open_export", "read_header"]

_BOM: Final = b"\xef\xbb\xbf"
_READ_BUFFER: Final = 1 << 20
_WHITESPACE: Final = b" \t\r\n"
_RATIO_FROM: Final = 16 << 20  # below this many expanded bytes the ratio says nothing (a tiny file packs well)


class _Stream:
    """The decompressed bytes of an export, with a look-ahead that the readers replay.

    Decompression failures surface inside the parsers' read() calls; they become ExportError
    here so that no parser sees a zlib or zip exception (lxml and ijson pass ours through).
    """

    def __init__(self, inner: IO[bytes], file: str, compression: str | None, limits: Limits = DEFAULT,
                 packed: Callable[[], int] | None = None) -> None:
        self._inner = inner
        self._file = file
        self._compression = compression
        self._limits = limits
        self._packed = packed  # compressed bytes consumed so far
        self.expanded = 0
        self.guard = Guard(file, limits, "")  # set to the file's dialect once it is known
        self._head = b""
        self._offset = 0  # how much of _head has been read
        self.at_eof = False
        self.newlines = 0

    def _raw_read(self, size: int) -> bytes:
        try:
            data = self._inner.read(size)
        except EOFError:
            raise ExportError(self._file, f"the {self._compression} data ends early: the file is cut short "
                              "(still being written, or damaged in transfer)") from None
        except (OSError, zlib.error, zipfile.BadZipFile, ValueError) as e:
            what = f"{self._compression} data" if self._compression else "file"
            raise ExportError(self._file, f"cannot read the {what}: {e}") from None
        if not data and size:
            self.at_eof = True
        self.newlines += data.count(b"\n")
        if self._compression:
            self.expanded += len(data)
            self._check_expansion()
        return data

    def _check_expansion(self) -> None:
        limits, expanded = self._limits, self.expanded
        if expanded > limits.max_expanded_size:
            raise exceeded(self._file, f"the {self._compression} data expands to more than "
                           f"{expanded:,} bytes", "max_expanded_size", limits.max_expanded_size, None)
        if expanded > _RATIO_FROM and self._packed is not None:
            packed = max(1, self._packed())
            if expanded > packed * limits.max_expansion_ratio:
                raise exceeded(self._file, f"the {self._compression} data expands {expanded // packed} times "
                               f"({packed:,} bytes to {expanded:,} so far)", "max_expansion_ratio",
                               limits.max_expansion_ratio, None)

    def counterparty_done(self, count: int = 1) -> None:
        self.guard.counterparty_done(count)

    def peek_at_least(self, size: int) -> bytes:
        """The first `size` bytes (fewer only at the end of the file), without consuming them."""
        while len(self._head) < size and not self.at_eof:
            self._head += self._raw_read(max(size - len(self._head), 65536))
        return self._head[:size]

    def skip(self, count: int) -> None:
        self._offset += count

    def read(self, size: int = -1) -> bytes:
        if self._offset < len(self._head):
            end = len(self._head) if size < 0 else min(len(self._head), self._offset + size)
            chunk = self._head[self._offset:end]
            self._offset = end
            if self._offset == len(self._head):
                self._head, self._offset = b"", 0
        elif size < 0:
            parts = []
            while data := self._raw_read(1 << 20):
                self.guard.scan(data)
                parts.append(data)
            return b"".join(parts)
        else:
            chunk = self._raw_read(size)
        self.guard.scan(chunk)
        return chunk


Opener = Callable[[], AbstractContextManager[tuple[_Stream, Dialect]]]


class _Reader(Protocol):
    def header(self) -> Header | None: ...

    def records(self) -> Iterator[RawCounterparty]: ...


@contextmanager
def _open_source(path: Path, name: str, growing: io.BufferedReader | None = None,
                 limits: Limits = DEFAULT) -> Iterator[tuple[_Stream, Dialect]]:
    """The decompressed stream and the format its first byte says."""
    with ExitStack() as stack:
        try:
            # A large buffer: every read that reaches the OS lets go of the GIL, and getting it back
            # while the writer's threads run costs up to a switch interval (5 ms) each time.
            opened = growing or cast(io.BufferedReader, open(path, "rb", buffering=_READ_BUFFER))  # noqa: SIM115
            raw = stack.enter_context(opened)
            magic = raw.peek(4)[:4]
        except OSError as e:
            raise ExportError(name, f"cannot open the file: {e.strerror or e}") from None
        if not magic:
            raise ExportError(name, "empty file: 1C may still be writing it, or the export failed")
        compression: str | None = None
        inner: IO[bytes] = cast(IO[bytes], raw)
        packed: Callable[[], int] | None = raw.tell
        if magic[:2] == b"\x1f\x8b":
            compression = "gzip"
            inner = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")))
        elif magic[:2] == b"PK":
            if growing is not None:  # the central directory is at the end: a zip cannot be read as it comes
                raise ValueError("a zip export cannot be read while it downloads")
            compression = "zip"
            member, offset = _open_zip_member(inner, name)
            inner = stack.enter_context(member)
            # The member reads ahead up to a read's worth of compressed bytes, kept in its decompressor.
            packed = lambda: raw.tell() - offset - len(getattr(getattr(member, "_decompressor", None),  # noqa: E731
                                                               "unconsumed_tail", b""))
        stream = _Stream(inner, name, compression, limits, packed)
        kind = _detect(stream, name, compression)
        stream.guard = Guard(name, limits, kind)
        yield stream, kind


def _open_zip_member(raw: IO[bytes], name: str) -> tuple[IO[bytes], int]:
    """The one member's bytes, and where in the archive its compressed data begins (for the ratio)."""
    try:
        archive = zipfile.ZipFile(raw)
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) != 1:
            listed = ", ".join(info.filename for info in members[:5]) or "nothing"
            raise ExportError(name, f"a zip export must hold exactly one file; this one holds {len(members)} "
                              f"({listed})")
        return archive.open(members[0]), members[0].header_offset
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, ValueError) as e:
        # RuntimeError: encrypted member; NotImplementedError: an unsupported compression method.
        raise ExportError(name, f"cannot read the zip archive: {e}") from None


def _detect(stream: _Stream, name: str, compression: str | None) -> Dialect:
    if stream.peek_at_least(2) in (b"\xff\xfe", b"\xfe\xff") or b"\0" in stream.peek_at_least(4):
        # UTF-16 or UTF-32 (with a byte order mark or without): not what the contract allows, and a
        # JSON reader or the byte shortcuts would misread it.
        raise ExportError(name, "the file starts like UTF-16 or UTF-32 text (a UTF-16 byte order mark or a NUL byte), "
                          "not an export: an export must be UTF-8 (with or without "
                          "BOM), or XML declaring windows-1251; save it as UTF-8", where="line 1")
    size = 256
    while True:
        head = stream.peek_at_least(size)
        start = 3 if head.startswith(_BOM) else 0
        body = head[start:].lstrip(_WHITESPACE)
        if body or len(head) < size:
            break
        size *= 16
    if not body:
        inside = f" (after {compression} decompression)" if compression else ""
        raise ExportError(name, f"empty file{inside}: 1C may still be writing it, or the export failed")
    first = body[:1]
    if first == b"<":
        return "xml"
    if first == b"{":
        return "json"
    shown = body[:20].decode("utf-8", "replace")
    raise ExportError(name, f"not an XML or JSON export: it starts with {shown!r}; an export starts "
                      "with < (XML) or { (JSON)", where="line 1")


def _reader(kind: Dialect, stream: _Stream, checker: Checker, reopen: Opener) -> _Reader:
    if kind == "xml":
        return XmlReader(stream, checker)
    return JsonReader(stream, checker, reopen)


def _rescanner(path: Path, name: str, source_tz: tzinfo, limits: Limits) -> Callable[[], Iterator[RawCounterparty]]:
    """A fresh pass over the file, for naming ids that the first pass saw twice."""

    def rescan() -> Iterator[RawCounterparty]:
        with (_open_source(path, name, limits=limits) as (stream, kind),
              closing(Checker(name, source_tz, dialect=kind, strict=False, quiet=True)) as quiet):
            reader = _reader(kind, stream, quiet, lambda: _open_source(path, name, limits=limits))
            reader.header()
            yield from reader.records()

    return rescan


def read_header(path: Path, *, name: str, source_tz: tzinfo, bitrix_tz: tzinfo | None = None,
                limits: Limits = DEFAULT) -> Header:
    """The export's header; raises ExportError if the file is not a valid export's beginning.

    For XML and for JSON whose header keys come first (as 1C writes them) this reads a few
    kilobytes; JSON with header keys after the counterparties is scanned to the end.
    """
    with (_open_source(path, name, limits=limits) as (stream, kind),
          closing(Checker(name, source_tz, dialect=kind, strict=True, bitrix_tz=bitrix_tz)) as checker):
        header = _reader(kind, stream, checker, lambda: _open_source(path, name, limits=limits)).header()
        assert header is not None  # a strict checker raises instead
        return header


class Export:
    """An open export: its header, and its counterparties streamed once."""

    def __init__(self, header: Header, checker: Checker, raws: Iterator[RawCounterparty],
                 finish: Callable[[], None]) -> None:
        self.header = header
        self._checker = checker
        self._raws = raws
        self._finish = finish
        self._started = False

    def _once(self) -> None:
        if self._started:
            raise RuntimeError("an Export's records can be iterated only once")
        self._started = True

    def counterparties(self) -> Iterator[Counterparty]:
        """Validated counterparties in file order. After the last one, the whole-file checks run
        (summary counts, ids seen twice), so a consumer must not commit before this is exhausted."""
        self._once()
        yield from records_of(self._checker, self._raws)
        self._finish()

    def changes(self, known: KnownDigests) -> Iterator[Counterparty | Unchanged]:
        """Like counterparties(), but those whose digest `known` holds come out as Unchanged, unparsed."""
        self._once()
        yield from changes_of(self._checker, self._raws, known)
        self._finish()


@contextmanager
def open_export(path: Path, *, name: str, source_tz: tzinfo, growing: io.BufferedReader | None = None,
                capacity: Capacity | None = None, bitrix_tz: tzinfo | None = None,
                limits: Limits = DEFAULT) -> Iterator[Export]:
    """Open an export for streaming; every problem raises ExportError (see the module docstring).

    `growing`: the file's bytes as they download (syncd.plumbing.pipe), read instead of `path`; `path` must
    hold the whole file once they end (it is read again only to name ids seen twice). Not for zip.
    `capacity`: what the database's columns hold; a value they cannot store is a problem too.
    """
    # The checker's id hashes spill to a temporary file, released here on success, error or early exit.
    with (_open_source(path, name, growing, limits) as (stream, kind),
          closing(Checker(name, source_tz, dialect=kind, strict=True, capacity=capacity,
                          bitrix_tz=bitrix_tz)) as checker):
        reader = _reader(kind, stream, checker, lambda: _open_source(path, name, limits=limits))
        header = reader.header()
        assert header is not None  # a strict checker raises instead
        rescan = _rescanner(path, name, source_tz, limits)
        yield Export(header, checker, reader.records(), lambda: checker.finish(rescan))


Scan = tuple[Checker, "Header | None", Iterator[Counterparty], Callable[[], Iterator[RawCounterparty]]]


@contextmanager
def scan_export(path: Path, *, name: str, source_tz: tzinfo, bitrix_tz: tzinfo | None = None,
                limits: Limits = DEFAULT) -> Iterator[Scan]:
    """For syncd.contract.checks.check_file: like open_export, but the checker records problems and goes on."""
    with (_open_source(path, name, limits=limits) as (stream, kind),
          closing(Checker(name, source_tz, dialect=kind, strict=False, totals=True, bitrix_tz=bitrix_tz)) as checker):
        reader = _reader(kind, stream, checker, lambda: _open_source(path, name, limits=limits))
        yield (checker, reader.header(), records_of(checker, reader.records()),
               _rescanner(path, name, source_tz, limits))

