"""Known counterparties cut out of an XML export's bytes before lxml parses them.

In the usual export almost every counterparty is byte for byte what syncd applied last time: its
digest is known (syncd.bitrix.hlblock.DigestIndex). Parsing such a counterparty only to set it aside
was most of the cost of applying an export with 1% changed: lxml building its tree, serialising it
again for the digest, and walking its payments for their ids. `KnownFilter` sits between the file
and lxml. It finds each root-level Counterparty element in the raw bytes and digests those bytes as
they are. When the digest is known and the element has the plain shape 1C writes, lxml is handed a
placeholder element instead, with as many line breaks so that line numbers stay right, and the
filter keeps what the file-wide checks still need: the ids of its payments and documents. Every other
counterparty passes through unchanged, with its digest, so it is not serialised again either.

Why a cut is exact. A span runs from `<Counterparty` at the root level to the first `</Counterparty>`.
In well-formed XML `<` appears only in markup (attribute values and text escape it), so that end tag
closes the element, unless the span holds a comment, CDATA section or processing instruction, or a
second Counterparty start tag. Such a span, or anything else at the root level but whitespace,
comments and processing instructions, ends the filtering: the rest of the file passes through as is.
A span whose bytes are not well-formed is passed to lxml, which refuses the file, so its digest is
never stored; a known digest is therefore always that of a well-formed element that was applied.
The digest covers the file's encoding too: the same bytes mean other text in another one. The filter
decides it as libxml2 does (a byte order mark first, then a declaration only as the first bytes) and
steps aside, letting lxml read everything, whenever that is not plain (`_encoding`).

Why the ids are exact. The reader lets the digest of a counterparty's bytes be stored only when its
shape is plain: the elements the contract names, values as text, payments and documents as empty
elements directly inside their holders. So every Payment and Document tag in a known counterparty is
one the reader would walk. The ids are taken from the bytes only when each payment's and document's
first attribute is its id in double quotes, and every attribute of a document is double-quoted (so
`dueDate="` cannot be part of another value); otherwise lxml reads the counterparty, still known by
its digest.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Final

from syncd.contract.raw import KnownDigests
from syncd.contract.values import parse_guid, parse_inn, parse_kpp
from syncd.formats.bytesource import ByteSource
from syncd.formats.shortcut.bytefilter import READ, ByteFilter, Cut

PLACEHOLDER: Final = "_syncd_known"
_PLACEHOLDER: Final = b"<" + PLACEHOLDER.encode() + b"/>"
_PROLOG_LIMIT: Final = 1 << 20
_START: Final = b"<Counterparty"
_END: Final = b"</Counterparty>"
_NAME_END: Final = frozenset(b" \t\r\n/>")
_WHITESPACE: Final = frozenset(b" \t\r\n")

_ATTRS = rb"""((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*"""
_ROOT_START: Final = re.compile(rb"<SettlementsExport" + _ATTRS + rb">")
_BOM: Final = b"\xef\xbb\xbf"
# The XML declaration as libxml2 takes it: only as the first bytes of the file (after a UTF-8 BOM).
_S = rb"[ \t\r\n]"
_DECLARATION: Final = re.compile(
    rb"<\?xml" + _S + rb"+version" + _S + rb"*=" + _S + rb"""*(?:"1\.[0-9]+"|'1\.[0-9]+')"""
    rb"(?:" + _S + rb"+encoding" + _S + rb"*=" + _S + rb"""*(?:"([A-Za-z][\w.-]*)"|'([A-Za-z][\w.-]*)'))?"""
    rb"(?:" + _S + rb"+standalone" + _S + rb"*=" + _S + rb"""*(?:"(?:yes|no)"|'(?:yes|no)'))?""" + _S + rb"*\?>")
_UTF8_NAMES: Final = frozenset({b"utf-8", b"utf8"})
_SPAN_START: Final = re.compile(rb"<Counterparty" + _ATTRS + rb">")
_ATTR: Final = re.compile(rb"""\s+([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_SPECIAL: Final = re.compile(rb"<[!?]")
# Every Payment and Document start tag matches; only those written plainly capture their id.
_PAYMENT_ID: Final = re.compile(rb'<Payment(?:\s+id="([^"&]+)"|[\s/>])')
_DOCUMENT: Final = re.compile(rb'<Document(?:\s+id="([^"&]+)"((?:\s+[A-Za-z_][\w.:-]*="[^"]*")*)\s*/>|[\s/>])')
_DUE_DATE: Final = re.compile(rb'\sdueDate="([^"&]*)"')

_PROLOG, _ROOT = range(2)


class KnownFilter(ByteFilter):
    """A file-like object over `source` for lxml, with known counterparties replaced (module docstring).

    The caller takes one Cut per Counterparty element or placeholder, in file order, while `cuts`
    has any: the filter makes each Cut before lxml can read the element's bytes, and stops making
    them for good once it has met something else at the root level.
    """

    def __init__(self, source: ByteSource) -> None:
        super().__init__(source)
        self._known: KnownDigests | None = None
        self._state = _PROLOG
        self._prefix = b""
        self._special = -1  # where in _buf the next "<!" or "<?" is (len(_buf): none); -1: to be found
        self._scanned = 0  # how far _buf has been searched for them
        self.cuts: deque[Cut] = deque()

    def set_known(self, known: KnownDigests | None) -> None:
        """The digests to compare with, once the caller has them (after the header was read)."""
        self._known = known

    def read(self, size: int | None = -1) -> bytes:
        if self._state == _PROLOG and not self._passing:
            # Up to the end of the root's start tag only: the header is read before the digests are
            # known (set_known), and no counterparty may pass before.
            self._emit(self._prolog())
            return self._hand_on(READ if size is None or size < 0 else size)
        return super().read(size)

    def _more(self) -> bool:
        pos = self._pos
        if not super()._more():
            return False
        # The buffer now starts where the next step does: what was searched moves with it.
        self._scanned = max(0, self._scanned - pos)
        self._special = -1
        return True

    def _next_special(self, pos: int) -> int:
        """Where the next comment, CDATA section, DOCTYPE or processing instruction starts, from `pos`.

        Looked up once per stretch of the buffer, not per counterparty: a file holds few or none."""
        if self._special < pos:
            found = _SPECIAL.search(self._buf, max(pos, self._scanned))
            self._special = self._scanned = found.start() if found else len(self._buf)
        return self._special

    # -- the prolog ---------------------------------------------------------------------------

    def _prolog(self) -> bytes:
        """Everything up to the end of the root's start tag (the whole file if there is none)."""
        while True:
            match = _ROOT_START.search(self._buf, self._pos)
            if match is not None:
                encoding = _encoding(self._buf[:match.start()])
                if encoding is None:
                    return self._give_up()
                self._prefix = b"xml-bytes\0" + encoding + b"\0"
                self._state = _ROOT
                return self._advance(match.end())
            if len(self._buf) - self._pos > _PROLOG_LIMIT or not self._more():
                return self._give_up()

    # -- the root level -----------------------------------------------------------------------

    def _step(self) -> bytes:
        """The next piece at the root level: whitespace, a comment or processing instruction, a
        counterparty or its placeholder; or, once anything else comes, all that was read."""
        while True:
            buf, pos = self._buf, self._pos
            end = len(buf)
            while pos < end and buf[pos] in _WHITESPACE:
                pos += 1
            if pos > self._pos:
                return self._advance(pos)
            if end - pos <= len(_START) and self._more():
                continue
            if pos >= end:
                self._passing = True  # the end of the file: lxml tells what is missing
                return b""
            if buf.startswith(b"<!--", pos) or buf.startswith(b"<?", pos):
                terminator = b"-->" if buf[pos + 1] == 0x21 else b"?>"
                close = buf.find(terminator, pos)
                if close < 0:
                    if self._more():
                        continue
                    return self._give_up()
                return self._advance(close + len(terminator))
            if self._known is None:
                return self._give_up()  # nothing to compare with (syncd validate): lxml reads it all
            if buf.startswith(_START, pos) and pos + len(_START) < end and buf[pos + len(_START)] in _NAME_END:
                close = buf.find(_END, pos)
                if close < 0:
                    if self._more():
                        continue
                    return self._give_up()
                if self._next_special(pos) < close or buf.find(_START, pos + 1, close) >= 0:
                    return self._give_up()
                self._pos = close + len(_END)
                self._cut_done()
                return self._span(buf[pos:self._pos])
            return self._give_up()

    # -- one counterparty -------------------------------------------------------------------------

    def _span(self, span: bytes) -> bytes:
        """What lxml gets for this counterparty; its Cut is queued first."""
        cut = Cut()
        self.cuts.append(cut)
        known = self._known
        assert known is not None  # _step gives up without it
        head = _SPAN_START.match(span)
        if head is None:
            return span  # the reader digests it itself
        attrs: dict[bytes, bytes] = {}
        for name, double, single in _ATTR.findall(head.group(1)):
            attrs[name] = double if double or not single else single
        try:
            cid = parse_guid(_text(attrs.get(b"id")))
            if cid is None:
                return span
            digest = known.digest(cid, parse_inn(_text(attrs.get(b"inn"))), parse_kpp(_text(attrs.get(b"kpp"))),
                                  self._prefix + span)
        except ValueError:
            return span  # the reader reports it
        cut.cid, cut.digest = cid, digest
        cut.known_as = known.find(digest)
        if cut.known_as is None:
            return span
        # The same line breaks, so that lxml counts the lines after it as in the file.
        lines, returns = span.count(b"\n"), span.count(b"\r") if b"\r" in span else 0
        if (returns and returns != lines) or not self._ids(span, cut):
            return span
        return _PLACEHOLDER + (b"\r\n" if returns else b"\n") * lines

    @staticmethod
    def _ids(span: bytes, cut: Cut) -> bool:
        """Take the ids of a known counterparty's payments and documents from its bytes, if they are
        written plainly: each element's first attribute is its id in double quotes, and a document's
        attributes are all in double quotes. Its shape is plain (see the module docstring): the reader
        only lets a counterparty's digest be stored when it is."""
        payments = _PAYMENT_ID.findall(span)
        if b"" in payments:
            return False
        try:
            # Lower case, as the checks compare them; one decode for all of them.
            ids = b"\n".join(payments).lower().decode("ascii").split("\n") if payments else []
            keys: list[tuple[str, str | None]] = []
            for ident, rest in _DOCUMENT.findall(span):
                due = _DUE_DATE.search(rest)
                if not ident or (due is None and b"dueDate=" in rest):
                    return False  # written otherwise, or the due date with a reference: lxml reads it
                keys.append((ident.lower().decode("ascii"), due.group(1).decode("ascii") if due else None))
        except UnicodeDecodeError:
            return False
        cut.payment_ids, cut.document_keys = ids, keys
        return True


def _encoding(prolog: bytes) -> bytes | None:
    """The encoding libxml2 reads the file in, from the bytes before the root element; None when it
    is not plain to tell (the filter then steps aside and lxml reads everything).

    libxml2 follows a byte order mark first, then the XML declaration, which counts only as the very
    first bytes; a processing instruction with an `encoding` pseudo-attribute is not one. A UTF-16 or
    UTF-32 file (BOM or not) starts with a NUL or a BOM other than UTF-8's."""
    start = 3 if prolog.startswith(_BOM) else 0
    if b"\0" in prolog[:4] or prolog[start:start + 1] not in (b"<", b" ", b"\t", b"\r", b"\n"):
        return None
    if not prolog.startswith(b"<?xml", start) or prolog[start + 5:start + 6] not in (b" ", b"\t", b"\r", b"\n"):
        return b"utf-8"  # no declaration: UTF-8 (and a misplaced one is the parser's error)
    declaration = _DECLARATION.match(prolog, start)
    if declaration is None:
        return None
    label = declaration.group(1) or declaration.group(2)
    encoding = label.lower() if label else b"utf-8"
    if start and encoding not in _UTF8_NAMES:
        return None  # the BOM says UTF-8, the declaration something else: libxml2 follows the BOM
    return encoding


def _text(value: bytes | None) -> str | None:
    """An attribute's value when it is plain ASCII without entities, as lxml would give it; else ValueError."""
    if value is None:
        return None
    if b"&" in value or not value.isascii():
        raise ValueError("not plain")
    return value.decode("ascii")
