"""XML exports: streamed with lxml's iterparse, one Counterparty element at a time.

Safety: a DOCTYPE may declare entities that expand into gigabytes ("billion laughs"), and lxml
still expands internal entities. The prolog (everything before the root element) is scanned as
bytes before the parser sees anything, and any `<!` other than a comment there refuses the file;
the parser is also configured not to resolve entities, load DTDs or touch the network.

Memory: each Counterparty element is cleared once it has been handed over, and the root's earlier
children are deleted, so the tree never holds more than one counterparty.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from lxml import etree

from syncd.contract.checks import (
    DOCUMENT_KEYS,
    HEADER_KEYS,
    LAST_PAYMENT_KEYS,
    PAYMENT_KEYS,
    XML_VALUE_ELEMENTS,
    Checker,
)
from syncd.contract.fields import COUNTERPARTY, COUNTERPARTY_PARTS, DOCUMENT, LAST_PAYMENT, PAYMENT, SUMMARY
from syncd.contract.raw import Fields, RawCounterparty, counterparty_label
from syncd.contract.records import Header
from syncd.errors import ExportError
from syncd.formats.bytesource import ByteSource
from syncd.formats.shortcut.bytefilter import Cut
from syncd.formats.shortcut.xmlsplit import PLACEHOLDER, KnownFilter

ROOT: Final = "SettlementsExport"
_SAFE_PARSER: Final[dict[str, Any]] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}
_COUNTERPARTY_ATTRS: Final = frozenset(f.key for f in COUNTERPARTY.attributes)
_VALUE_TAGS: Final = {tag: key for key, tag in XML_VALUE_ELEMENTS.items()}
_CONTRACT_ELEMENTS: Final = frozenset({ROOT, *(kind.name for kind in (COUNTERPARTY, PAYMENT, DOCUMENT, LAST_PAYMENT,
                                                                      SUMMARY)),
                                       *COUNTERPARTY_PARTS.values(), *_VALUE_TAGS})
_PROLOG_LIMIT: Final = 1 << 20
_WHITESPACE: Final = b" \t\r\n"
_HUGE: Final = re.compile(r",? *(?:use|try) XML_PARSE_HUGE(?: option)?")
_DONE: Final = frozenset({"Counterparty", PLACEHOLDER})


class XmlReader:
    def __init__(self, stream: ByteSource, checker: Checker) -> None:
        self._stream = stream
        self._checker = checker
        self._file = checker.file
        self._events: Iterator[tuple[str, Any]] | None = None
        self._root: Any = None
        self._filter: KnownFilter | None = None

    def header(self) -> Header | None:
        self._check_prolog()
        # Known counterparties are cut out of the bytes before lxml sees them (syncd.formats.shortcut.xmlsplit),
        # once records() knows the digests to compare with.
        self._filter = KnownFilter(self._stream)
        self._events = etree.iterparse(
            # "{*}": in any namespace too, so that a namespaced Counterparty is refused as it ends, not
            # held in the tree to the end of the file.
            self._filter, events=("start", "end"), tag=(ROOT, "{*}Counterparty", "{*}Summary", PLACEHOLDER),
            **_SAFE_PARSER,
        )
        first = self._next()
        if first is None or first[0] != "start" or first[1].tag != ROOT:
            raise ExportError(self._file, f"the root element must be {ROOT} without a namespace",
                              where="line 1")
        root = self._root = first[1]
        self._stream.counterparty_done()  # the header is read
        where = f"line {root.sourceline}"
        for key in root.keys():  # noqa: SIM118 - iterating an lxml element gives its children
            if key not in HEADER_KEYS:
                self._checker.unknown(f"attribute {key!r} of {ROOT}", where)
        return self._checker.header(root.attrib, where=where)

    def _next(self) -> tuple[str, Any] | None:
        assert self._events is not None
        try:
            return next(self._events)
        except StopIteration:
            return None
        except etree.ParseError as e:  # XMLSyntaxError and its kin
            raise _syntax_error(self._file, e, self._stream) from None

    def records(self) -> Iterator[RawCounterparty]:
        """Raw counterparties in file order; each is valid only until the next one is asked for."""
        if self._events is None:
            self.header()
        checker = self._checker
        root = self._root
        assert self._filter is not None  # made by header()
        self._filter.set_known(checker.known)
        cuts = self._filter.cuts
        index = 0
        summary_line: int | None = None
        while (item := self._next()) is not None:
            event, elem = item
            if event != "end":
                continue
            tag = elem.tag
            if tag in _DONE:
                self._stream.counterparty_done()
            if tag == PLACEHOLDER and cuts:
                index += 1
                yield cuts.popleft().known_raw(index, elem.sourceline)
                self._forget(elem)
            elif tag == "Counterparty":
                index += 1
                if elem.getparent() is not root:
                    checker.problem("a Counterparty must be a child of the root element; this one is "
                                    f"inside {elem.getparent().tag}", where=f"line {elem.sourceline}")
                elif summary_line is not None:
                    checker.problem(f"Summary (line {summary_line}) must be the last element; "
                                    "a Counterparty follows it", where=f"line {elem.sourceline}")
                yield self._counterparty(elem, index, cuts.popleft() if cuts else None)
                self._forget(elem)
            elif tag == "Summary":
                where = f"line {elem.sourceline}"
                if elem.getparent() is not root:
                    checker.problem("Summary must be a child of the root element", where=where)
                summary_line = elem.sourceline
                checker.set_summary(elem.attrib, where=where)
            elif tag == ROOT:
                for child in root:
                    self._note_stray(child)
                return
            elif tag[:1] == "{" and elem.getparent() is root:
                self._unknown_element(tag, ROOT, elem.sourceline)
                root.remove(elem)  # reported: not again as a stray
        raise ExportError(self._file, "the file ends before </SettlementsExport>: it is cut short "
                          "(still being written, or damaged in transfer)")

    def _forget(self, elem: Any) -> None:
        elem.clear(keep_tail=False)
        root = self._root
        while elem.getprevious() is not None:
            self._note_stray(root[0])
            del root[0]

    def _note_stray(self, child: Any) -> None:
        tag = child.tag
        if tag != "Counterparty" and tag != "Summary" and tag != PLACEHOLDER and isinstance(tag, str):
            self._unknown_element(tag, ROOT, child.sourceline)

    def _counterparty(self, elem: Any, index: int, cut: Cut | None) -> RawCounterparty:
        checker = self._checker
        line = elem.sourceline
        content: bytes | None = None
        digested: tuple[str, str] | None = None
        if cut is not None and cut.digest is not None:
            # Digested from its bytes by the filter: known but not of the shape it takes apart, or not known.
            digested = (cut.cid, cut.digest)
            if cut.known_as is not None:
                raw = RawCounterparty(index, line, elem, {})
                raw.digested, raw.known_as = digested, cut.known_as
                return self._known_items(elem, raw)
        elif checker.known is not None:
            # The digest is of the element as the parser read it: serialising it again in C is ~10 µs,
            # against ~100 µs to parse and check its values. When the writer knows it, these bytes were
            # read in full and passed every check when applied (unknown names were warned about then):
            # only the ids of its items are still needed, for the file-wide checks.
            content = etree.tostring(elem, encoding="utf-8", with_tail=False)
            raw = RawCounterparty(index, line, elem, {}, content=content)
            if checker.match(raw):
                return self._known_items(elem, raw)
            digested = raw.digested
        if not _COUNTERPARTY_ATTRS.issuperset(elem.keys()):
            for key in elem.keys():  # noqa: SIM118 - iterating an lxml element gives its children
                if key not in _COUNTERPARTY_ATTRS:
                    checker.unknown(f"attribute {key!r} of Counterparty", f"line {line}")
        raw, plain = self._children(elem, index)
        raw.content, raw.digested = content, digested
        if cut is not None and not plain:
            raw.digested = None  # its bytes' digest is not stored: the next file compares it in full
        return raw

    def _children(self, elem: Any, index: int) -> tuple[RawCounterparty, bool]:
        """The counterparty's fields from its child elements, and whether its shape is the plain one
        the filter may take ids from once the digest is known (syncd.formats.shortcut.xmlsplit): nothing but
        the contract's elements, each once, where the reader walks them."""
        checker = self._checker
        values: dict[str, object] = {}
        last: Fields | None = None
        payments: list[Any] = []
        documents: list[Any] = []
        holders: set[str] = set()
        plain = True
        for child in elem:
            tag = child.tag
            if tag in _VALUE_TAGS:
                key = _VALUE_TAGS[tag]
                if key in values or len(child) or len(child.attrib):
                    self._odd_value(elem, child, index, twice=key in values)
                    plain = False
                values[key] = child.text
            elif tag == "Payments" or tag == "OpenDocuments" or tag == "LastPayment":
                if tag in holders:
                    self._twice(elem, child, index)
                holders.add(tag)
                if tag == "LastPayment":
                    last = child
                    if len(child):
                        self._item_children(elem, index, "LastPayment", LAST_PAYMENT_KEYS, [child], None)
                        plain = False
                    continue
                item_tag, names, items = (("Payment", PAYMENT_KEYS, payments) if tag == "Payments"
                                          else ("Document", DOCUMENT_KEYS, documents))
                found = child.findall(item_tag)
                if len(found) != len(child):
                    self._note_children(child, item_tag)
                    plain = False
                if any(len(item) for item in found):
                    self._item_children(elem, index, item_tag, names, found, len(items) + 1)
                    plain = False
                items.extend(found)
            elif tag in ("Payment", "Document"):
                holder = "Payments" if tag == "Payment" else "OpenDocuments"
                checker.problem(f"{tag} must be inside {holder}", where=f"line {child.sourceline}")
            else:
                self._unknown_element(tag, "Counterparty", child.sourceline)
                plain = False
        return RawCounterparty(index, elem.sourceline, elem, values, last, payments, documents), plain

    @staticmethod
    def _where(elem: Any, index: int, line: int) -> str:
        return f"line {line}, {counterparty_label(index, elem.get('id'))}"

    def _twice(self, elem: Any, child: Any, index: int) -> None:
        tag = child.tag
        first = elem.find(tag).sourceline
        self._checker.problem(
            f"the element {tag} appears twice (first at line {first}): each element appears at most once in a "
            "Counterparty, and which one is meant cannot be told", where=self._where(elem, index, child.sourceline),
            field=tag)

    def _odd_value(self, elem: Any, child: Any, index: int, *, twice: bool) -> None:
        """A value element that is there twice, holds elements, or has attributes."""
        checker, tag, line = self._checker, child.tag, child.sourceline
        if twice:
            self._twice(elem, child, index)
        if len(child):
            checker.problem(f"the element {tag} must hold only its value as text; it holds an element "
                            f"<{child[0].tag}>, and the text around it cannot be told apart",
                            where=self._where(elem, index, line), field=tag)
        for key, value in child.items():
            if key == "currency":
                # The counterparty's currency is that of all its amounts: an amount that names another
                # one would be shown in the wrong currency. One that agrees is only redundant.
                own = elem.get("currency") or "RUB"
                if value.strip().upper() != own.strip().upper():
                    checker.problem(f"the amount says currency {value} but the counterparty's currency is {own}; "
                                    "all amounts of a counterparty are in its currency (attribute currency of "
                                    "Counterparty)", where=self._where(elem, index, line), field=tag)
                    continue
            checker.unknown(f"attribute {key!r} of {tag}", f"line {line}")

    def _item_children(self, elem: Any, index: int, owner: str, names: frozenset[str], items: list[Any],
                       first: int | None) -> None:
        """Child elements of payments, documents (numbered from `first`) or a last payment, whose fields
        are attributes: one named like a field is a second value beside the attribute, or a value the
        reader would not see."""
        label = counterparty_label(index, elem.get("id"))
        for number, item in enumerate(items, first or 0):
            for sub in item:
                if sub.tag not in names:
                    self._unknown_element(sub.tag, owner, sub.sourceline)
                    continue
                what = f"{owner.lower()} #{number} of " if first is not None else ""
                self._checker.problem(
                    f"written as a child element of {owner}; in XML the fields of a {owner} are its attributes "
                    f'({sub.tag}="…")', field=sub.tag,
                    where=f"line {sub.sourceline}, {what}{label}")

    @staticmethod
    def _known_items(elem: Any, raw: RawCounterparty) -> RawCounterparty:
        """A known counterparty's payments and documents, as the full read would find them, for their ids."""
        paid: list[Any] = []
        owed: list[Any] = []
        for holder in elem.iterchildren("Payments", "OpenDocuments"):
            if holder.tag == "Payments":
                paid.extend(holder.iterchildren("Payment"))
            else:
                owed.extend(holder.iterchildren("Document"))
        raw.payments, raw.documents = paid, owed
        return raw

    def _unknown_element(self, tag: str, owner: str, line: int) -> None:
        """An element the contract does not name: warned about and ignored; but one of the contract's
        names in a namespace is refused. To XML it is another element, and ignoring, say, every
        Counterparty of a full export would zero every debt."""
        namespace, _, local = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
        if namespace and local in _CONTRACT_ELEMENTS:
            self._checker.problem(f"the element {local} has a namespace ({namespace}); the contract's elements have "
                                  "none, so this is not the element the contract names: remove the xmlns declaration",
                                  where=f"line {line}")
        else:
            self._checker.unknown(f"element {tag} in {owner}", f"line {line}")

    def _note_children(self, holder: Any, expected: str) -> None:
        for child in holder:
            if child.tag != expected:
                self._unknown_element(child.tag, holder.tag, child.sourceline)

    def _check_prolog(self) -> None:
        """Refuse DOCTYPE and entity declarations before the parser can expand anything.

        Only the prolog (XML declaration, comments, processing instructions, whitespace) may precede
        the root; the encodings syncd accepts (UTF-8, windows-1251) spell all of it in ASCII.
        """
        peek = self._stream.peek_at_least
        size = 4096
        while True:
            head: bytes = peek(size)
            verdict = _scan_prolog(head, complete=len(head) < size)
            if verdict is not None:
                break
            if size >= _PROLOG_LIMIT:
                raise ExportError(self._file, "no root element in the first megabyte of the file")
            size *= 4
        kind, line, detail = verdict
        if kind == "doctype":
            raise ExportError(self._file, "the file has a DOCTYPE or entity declaration; exports must not "
                              "have one (it could expand entities), so the file is refused unread",
                              where=f"line {line}")
        if kind == "root" and detail != ROOT:
            raise ExportError(self._file, f"the root element is {detail}, expected {ROOT}: "
                              "this is not a settlements export", where=f"line {line}")
        if kind == "bad":
            raise ExportError(self._file, f"not well-formed XML before the root element: {detail}",
                              where=f"line {line}")


def _scan_prolog(head: bytes, *, complete: bool) -> tuple[str, int, str] | None:
    """("root", line, name), ("doctype", line, ""), ("bad", line, why), or None if more bytes are needed."""
    pos = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    end = len(head)
    while True:
        while pos < end and head[pos] in _WHITESPACE:
            pos += 1
        line = head.count(b"\n", 0, pos) + 1
        if not complete and end - pos < 9:
            return None  # too few bytes to tell "<!--" from "<!DOCTYPE" or to read a name
        if pos >= end:
            return ("bad", line, "no root element") if complete else None
        if head.startswith(b"<?", pos):
            terminator = b"?>"
        elif head.startswith(b"<!--", pos):
            terminator = b"-->"
        elif head.startswith(b"<!", pos):
            return "doctype", line, ""
        elif head.startswith(b"<", pos):
            stop = pos + 1
            while stop < end and head[stop] not in b" \t\r\n/>":
                stop += 1
            if stop == end and not complete:
                return None
            return "root", line, head[pos + 1:stop].decode("utf-8", "replace")
        else:
            return "bad", line, "text before the root element"
        close = head.find(terminator, pos + 2)
        if close < 0:
            return ("bad", line, "unterminated declaration or comment") if complete else None
        pos = close + len(terminator)


def _syntax_error(file: str, error: etree.ParseError, stream: ByteSource) -> ExportError:
    message, line = str(error.msg or error), error.lineno
    # With resolve_entities=False an undefined entity surfaces as a generic "no element found" at
    # line 0; the real error is the newest fatal entry of the parser's log (older entries may be
    # left from earlier parses in this thread).
    if not line:
        fatal = error.error_log.filter_from_fatals() if error.error_log else None
        if fatal:
            message, line = fatal[-1].message, fatal[-1].line
    # libxml2 appends ", line N, column M"; the location goes in front instead.
    cut = message.rfind(", line ")
    if cut > 0:
        message = message[:cut]
    huge = _HUGE.search(message)
    if huge is not None:
        # Its advice (XML_PARSE_HUGE) is for programmers; syncd keeps huge_tree off on purpose.
        message = (message[:huge.start()] + ": past a limit of libxml2 that syncd keeps on (lxml's huge_tree "
                   "stays off); real exports stay far below it (they nest 4 elements deep), so the file is refused")
    # libxml2 words a cut-off file in many ways; what they share is an error on the file's last line.
    if stream.at_eof and line and line >= stream.newlines:
        message += " (the file ends here: it is cut short, still being written or damaged in transfer)"
    return ExportError(file, f"not well-formed XML: {message}", where=f"line {line}" if line else None)
