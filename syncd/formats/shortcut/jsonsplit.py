"""Known counterparties cut out of a JSON export's bytes before ijson builds them.

The JSON twin of syncd.formats.shortcut.xmlsplit. With 1% of an export changed, building the other 99% of the
counterparties as Python objects only to find their digest known was most of the run (ijson's C
builder: ~46 µs a counterparty, pickling it for the digest ~7 µs more). `KnownFilter` sits between
the bytes of the counterparties array and ijson. It finds each element of the array in the raw bytes
and digests those bytes as they are. When the digest is known, ijson is handed the placeholder `0 `
instead, and the filter takes from the bytes what the file-wide checks still need: the ids of the
counterparty's payments and documents. Every other element passes through byte for byte, with its
digest, so the reader need not pickle it either.

Why a cut is exact. An element starts at a `{` at the array's level. Its end is found in one of two
ways, each following JSON's own rule for strings (a `"` opens and closes them, a backslash escapes the
next character), so it is where ijson's lexer would close the object:
- fast: the first `}` followed by the separator that came between the first two elements (e.g.
  `},\n  {`), accepted only when the bytes between hold no backslash, every structural character
  outside the quoted strings and the brackets nest as a counterparty's do (checked in C: translate
  keeps `"{}[]\\`, adjacent quote pairs are dropped, a small pattern matches what is left);
- slow (the last element, files written on one line, strings with escapes): one pattern that steps
  over strings and over objects and arrays nested up to two deep inside the counterparty.
Anything else at the array's level (another kind of value, an element nested deeper, a counterparty
over 16 MiB) ends the filtering: from there on the bytes pass as they are and ijson reads them all.
A known digest is that of an element ijson parsed and syncd applied, so a span with a known digest is
a whole, well-formed object, and swapping it for `0 ` (a value that ends where it ends) changes no
verdict on the rest of the file. A counterparty the slow pattern cannot match is taken for one not
read to its end yet, up to 16 MiB, before the filtering ends.

Why the ids are exact. They are taken only from known spans whose strings hold no structural
character and no backslash, so every bracket is structure and every string is `"[^"]*"`, and whose
brackets have the plain shape: arrays of flat objects and flat objects inside the counterparty, so
every array is at its level. `"payments"` and `"openDocuments"` must each occur once at most, as a key
holding an array. When the counterparty was applied, the checks refused it unless each payment and
document had a string id (the last `"id"` key, for ijson); so as many string ids as payment objects
means one each and the one ijson kept, and each document must show exactly one. A span that fails
any of this is still known by its digest; ijson reads it, and the reader takes the ids from what
ijson built.

Why the digest is of the right counterparty. It covers the counterparty's id, INN and KPP (its site
user), taken from its first keys as 1C writes them, else from the scalar keys before its first
nested value. When ijson reads the element (its
digest not known yet), the reader compares them with what ijson built and keeps the digest only when
they agree; otherwise it digests what ijson built, as it does without the filter.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Final

from syncd.contract.raw import KnownDigests
from syncd.contract.values import parse_guid, parse_inn, parse_kpp
from syncd.formats.bytesource import ByteSource
from syncd.formats.shortcut.bytefilter import ByteFilter, Cut

# The space keeps what follows from becoming part of the number: "0" before a stray ".5" would be 0.5.
PLACEHOLDER: Final = b"0 "
DIGEST_PREFIX: Final = b"json-bytes\0"
_ELEMENT_LIMIT: Final = 16 << 20
_LEAD_WINDOW: Final = 1 << 20  # how far ahead the separator is looked for
_LEAD_MISSES: Final = 8  # elements whose end the fast way did not find: it is dropped

_WHITESPACE: Final = re.compile(rb"[ \t\r\n]*+")
_SEPARATOR: Final = re.compile(rb"[ \t\r\n]*+,[ \t\r\n]*+\{")
_STRING = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_OTHER = rb'[^"{}\[\]]++'
_LEVEL0 = rb"(?:" + _OTHER + rb"|" + _STRING + rb")*+"
_LEVEL1 = rb"(?:" + _OTHER + rb"|" + _STRING + rb"|\{" + _LEVEL0 + rb"\}|\[" + _LEVEL0 + rb"\])*+"
_LEVEL2 = rb"(?:" + _OTHER + rb"|" + _STRING + rb"|\{" + _LEVEL1 + rb"\}|\[" + _LEVEL1 + rb"\])*+"
_ELEMENT: Final = re.compile(rb"\{" + _LEVEL2 + rb"\}", re.DOTALL)
# What is left of a counterparty once everything but brackets is gone: arrays and objects inside it,
# each holding only empty ones (payments, documents, lastPayment).
_SHAPE: Final = re.compile(rb"\{(?:\[(?:\{\}|\[\])*+\]|\{(?:\{\}|\[\])*+\})*+\}")
# The shape ids are taken from: besides the arrays of flat objects, only flat objects (lastPayment).
_PLAIN: Final = re.compile(rb"\{(?:\{\}|\[(?:\{\})*+\])*+\}")
_KEEP_STRUCTURE: Final = bytes(c for c in range(256) if c not in b'"{}[]\\\v\f')
_HEAD: Final = re.compile(rb'\{[ \t\r\n]*+"id"[ \t\r\n]*+:[ \t\r\n]*+"([^"\\]*)"'
                          rb'(?:[ \t\r\n]*+,[ \t\r\n]*+"inn"[ \t\r\n]*+:[ \t\r\n]*+"([^"\\]*)")?'
                          rb'(?:[ \t\r\n]*+,[ \t\r\n]*+"kpp"[ \t\r\n]*+:[ \t\r\n]*+"([^"\\]*)")?'
                          rb'[ \t\r\n]*+([,}])')
_FIRST_NESTED: Final = re.compile(rb"[\[{]")
_PAIR: Final = re.compile(rb'"([A-Za-z]+)"[ \t\r\n]*+:[ \t\r\n]*+"([^"\\]*)"')
_COLON_ARRAY: Final = re.compile(rb"[ \t\r\n]*+:[ \t\r\n]*+\[")
_ID: Final = re.compile(rb'"id"[ \t\r\n]*+:[ \t\r\n]*+"([^"]*)"')
_DUE: Final = re.compile(rb'"dueDate"[ \t\r\n]*+:[ \t\r\n]*+(?:"([^"]*)"|null)')

_ELEMENT_NEXT, _AFTER_ELEMENT = range(2)


class KnownFilter(ByteFilter):
    """A file-like object for ijson over the counterparties array and what follows it.

    `start` is what the reader had already read past the array's `[`. The reader takes one Cut per
    array element while `cuts` has any: each is made before ijson can read the element's bytes, and
    none are made once the filter has met something it does not take apart.
    """

    def __init__(self, source: ByteSource, start: bytes, known: KnownDigests) -> None:
        super().__init__(source, start)
        self._known = known
        self._state = _ELEMENT_NEXT
        self._lead: bytes | None = None  # "}" + the separator between elements + "{"; b"": not used
        self._misses = 0
        self.cuts: deque[Cut] = deque()

    # -- the array's level ------------------------------------------------------------------------

    def _step(self) -> bytes:
        """The next piece: whitespace and a comma, an element or its placeholder; or, once anything
        else comes (the array's end among it), all that was read."""
        while True:
            buf, pos = self._buf, self._pos
            at = _WHITESPACE.match(buf, pos).end()  # type: ignore[union-attr]  # matches the empty string
            if at == len(buf):
                if self._more():
                    continue
                return self._give_up()  # the file ends here: ijson tells what is missing
            char = buf[at]
            if self._state == _AFTER_ELEMENT:
                if char != 0x2C:  # "]" or something else: no more elements to take apart
                    return self._give_up()
                self._state = _ELEMENT_NEXT
                # The comma and the whitespace after it, in one piece with what came before.
                after = _WHITESPACE.match(buf, at + 1).end()  # type: ignore[union-attr]
                if after == len(buf) and not self._eof:
                    return self._advance(at + 1)
                return self._advance(after)
            if char != 0x7B:  # "{"; an empty array's "]" ends the filtering too
                return self._give_up()
            if at > pos:
                return self._advance(at)
            end, skeleton = self._element_end(pos)
            if end == -1:
                self._more()  # at the end of the file, the next try gives a definite answer
                continue
            if end == -2:
                return self._give_up()
            if self._lead is None:
                self._learn_lead(end)
            self._state = _AFTER_ELEMENT
            self._pos = end
            self._cut_done()
            return self._span(buf[pos:end], skeleton)

    def _element_end(self, pos: int) -> tuple[int, bytes | None]:
        """Where the element at `pos` ends (-1: more bytes are needed; -2: not one to take apart), and
        what _shape() left of it when the end was found the fast way."""
        buf = self._buf
        lead = self._lead
        if lead:
            window = pos + _LEAD_WINDOW
            found = buf.find(lead, pos, window)
            if found >= 0:
                skeleton = _shape(buf[pos:found + 1])
                if skeleton is not None:
                    return found + 1, skeleton
            elif not self._eof and len(buf) < window:
                return -1, None
        else:
            found = -1
        match = _ELEMENT.match(buf, pos)
        if lead and (found < 0 or (match is not None and match.end() <= found)):
            # The separator was not there, or further on than the element's end: looking that far
            # ahead for every element would cost more than the pattern.
            self._misses += 1
            if self._misses >= _LEAD_MISSES:
                self._lead = b""
        if match is not None:
            return match.end(), None
        return (-1 if not self._eof and len(buf) < pos + _ELEMENT_LIMIT else -2), None

    def _learn_lead(self, end: int) -> None:
        separator = _SEPARATOR.match(self._buf, end)
        if separator is not None:
            self._lead = b"}" + self._buf[end:separator.end()]

    # -- one counterparty -------------------------------------------------------------------------

    def _span(self, span: bytes, shaped: bytes | None) -> bytes:
        """What ijson gets for this element; its Cut is queued first. `shaped`: what _shape() left of it,
        if the end was found the fast way."""
        cut = Cut()
        self.cuts.append(cut)
        try:
            head = _head(span)
            cid = parse_guid(head[0])
            if cid is None:
                return span
            digest = self._known.digest(cid, parse_inn(head[1]), parse_kpp(head[2]), DIGEST_PREFIX + span)
        except ValueError:
            return span  # the reader reports it, or digests what ijson built
        cut.cid, cut.digest, cut.head = cid, digest, head
        cut.known_as = self._known.find(digest)
        if cut.known_as is None:
            return span
        skeleton = shaped or _shape(span)
        if skeleton is None or not _ids(span, skeleton, cut):
            return span
        return PLACEHOLDER


def _head(span: bytes) -> tuple[str | None, str | None, str | None]:
    """The id, INN and KPP as the counterparty's scalar keys give them (any may be None); the keys
    before its first nested value, or, as 1C writes them, its first keys. UnicodeDecodeError (a
    ValueError) if they are not UTF-8."""
    match = _HEAD.match(span)
    if match is not None:
        ident, inn, kpp, after = match.groups()
        if after == b"}" or (inn is not None and kpp is not None):
            return _text(ident), _text(inn), _text(kpp)
    nested = _FIRST_NESTED.search(span, 1)
    pairs = dict(_PAIR.findall(span, 1, nested.start() if nested else len(span)))
    return _text(pairs.get(b"id")), _text(pairs.get(b"inn")), _text(pairs.get(b"kpp"))


def _shape(span: bytes) -> bytes | None:
    """The brackets of a counterparty whose strings hold no structural character and no backslash, if
    they nest as a counterparty's do; else None."""
    skeleton = span.translate(None, _KEEP_STRUCTURE)
    if skeleton.translate(None, b'"{}[]'):
        return None  # a backslash, or a vertical tab or form feed (whitespace to ijson, not to these patterns)
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton or _SHAPE.fullmatch(skeleton) is None:
        return None
    return skeleton


def _ids(span: bytes, skeleton: bytes, cut: Cut) -> bool:
    """Take a known counterparty's payment ids and document keys from its bytes, when they can be
    taken exactly (module docstring). `skeleton` is what _shape() left of the span."""
    if _PLAIN.fullmatch(skeleton) is None:
        return False  # every "[" is at the counterparty's level only in this shape
    payments = _array(span, b'"payments"')
    documents = _array(span, b'"openDocuments"')
    if payments is None or documents is None:
        return False
    # The checks refused a counterparty with a payment or document whose id (the last "id" key, for
    # ijson) is not a string GUID. So when each object has one "id" key with a string, the id found
    # is that one; and as many found as objects means each has one.
    ids = _ID.findall(payments)
    if len(ids) != payments.count(b"{"):
        return False
    keys: list[tuple[bytes, bytes | None]] = []
    if documents:
        for document in documents.split(b"}")[:-1]:
            ident = _ID.findall(document)
            dues = document.count(b'"dueDate"')
            due = _DUE.search(document) if dues == 1 else None
            if len(ident) != 1 or dues > 1 or (dues and due is None):
                return False
            keys.append((ident[0], due.group(1) if due is not None else None))
    try:
        cut.payment_ids = b"\n".join(ids).lower().decode("ascii").split("\n") if ids else []
        cut.document_keys = [(i.lower().decode("ascii"), None if d is None else d.decode("ascii")) for i, d in keys]
    except UnicodeDecodeError:
        cut.payment_ids = cut.document_keys = None
        return False
    return True


def _array(span: bytes, key: bytes) -> bytes | None:
    """The inside of the array under `key` (b"" without the key); None unless the key occurs once and
    holds an array. In the _PLAIN shape that array is at the counterparty's level and holds flat
    objects only, and no string holds a bracket, so its first "]" closes it."""
    at = span.find(key)
    if at < 0:
        return b""
    if span.find(key, at + len(key)) >= 0:
        return None  # twice (ijson keeps the last), or as a value too
    colon = _COLON_ARRAY.match(span, at + len(key))
    if colon is None:
        return None  # a value, not a key; or null, or not an array: ijson and the checks say what it is
    return span[colon.end():span.find(b"]", colon.end())]


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8")
