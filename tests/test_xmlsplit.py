"""KnownFilter: known counterparties cut out of the XML bytes; everything else passes byte for byte.

What it must never do: change a byte lxml reads other than by swapping a whole known, plainly shaped
Counterparty for a placeholder with the same line breaks; or take apart anything it cannot cut exactly.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from syncd.bitrix.hlblock import DigestIndex
from syncd.bitrix.users import Linker
from syncd.contract.records import Counterparty
from syncd.formats import open_export
from syncd.formats.shortcut.xmlsplit import PLACEHOLDER, KnownFilter
from tests.exports import counterparty, guid, xml_export
from tests.known import Known

MSK = ZoneInfo("Europe/Moscow")
SAMPLES = [Path(__file__).parent / "data" / "good_1c_formatted.xml",
           *sorted((Path(__file__).resolve().parent.parent / "syncd" / "samples").glob("*.xml"))]


def _filter(content: bytes, known: Known | None) -> tuple[bytes, KnownFilter]:
    f = KnownFilter(io.BytesIO(content))  # type: ignore[arg-type]
    out = [f.read(100)]  # the prolog, before the digests are known
    f.set_known(known)
    while chunk := f.read(4096):
        out.append(chunk)
    return b"".join(out), f


def _known_after_one_pass(content: bytes, *ids: str) -> Known:
    first = Known()
    _filter(content, first)
    return Known({first.seen[i] for i in ids})


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_with_nothing_known_every_byte_passes_and_every_counterparty_is_digested(path: Path) -> None:
    content = path.read_bytes()
    known = Known()

    out, f = _filter(content, known)

    assert out == content
    assert len(f.cuts) == content.count(b"<Counterparty ") and all(c.digest for c in f.cuts)
    assert [c.cid for c in f.cuts] == list(known.seen)


def test_a_known_counterparty_becomes_a_placeholder_on_the_same_lines() -> None:
    cps = [counterparty(1, payments=2, documents=1), counterparty(2, payments=1), counterparty(3)]
    cps[0]["payments"][0]["id"] = cps[0]["payments"][0]["id"].upper()  # compared in lower case
    content = xml_export(cps)
    known = _known_after_one_pass(content, guid(1), guid(3))

    out, f = _filter(content, known)

    assert out.count(b"\n") == content.count(b"\n")
    root = etree.fromstring(out)
    lines = {el.get("id") or el.tag: el.sourceline for el in root}
    original = {el.get("id"): el.sourceline for el in etree.fromstring(content)}
    assert [el.tag for el in root] == [PLACEHOLDER, "Counterparty", PLACEHOLDER, "Summary"]
    assert lines[guid(2)] == original[guid(2)]
    assert [el.sourceline for el in root if el.tag == PLACEHOLDER] == [original[guid(1)], original[guid(3)]]
    first, second, third = f.cuts
    assert first.known_as is not None and first.payment_ids == [guid(1000, 1), guid(1001, 1)]
    assert first.document_keys == [(guid(1000, 2), "2026-10-31")]
    assert (second.known_as, second.payment_ids, second.digest is not None) == (None, None, True)
    assert (third.payment_ids, third.document_keys) == ([], [])


def test_line_breaks_of_windows_stay_as_they_were() -> None:
    content = xml_export([counterparty(1, payments=2), counterparty(2)]).replace(b"\n", b"\r\n")
    known = _known_after_one_pass(content, guid(1))

    out, _ = _filter(content, known)

    assert out.count(b"\r\n") == content.count(b"\r\n") and out.count(PLACEHOLDER.encode()) == 1
    assert [el.sourceline for el in etree.fromstring(out)] == [el.sourceline for el in etree.fromstring(content)]


def test_everything_on_one_line_is_cut_the_same() -> None:
    content = b"".join(line.strip() for line in xml_export([counterparty(n, payments=1) for n in (1, 2)]).splitlines())
    known = _known_after_one_pass(content, guid(2))

    out, f = _filter(content, known)

    assert [el.tag for el in etree.fromstring(out)] == ["Counterparty", PLACEHOLDER, "Summary"]
    assert [c.cid for c in f.cuts] == [guid(1), guid(2)]


def _two(first: str, *, root_extra: str = "") -> bytes:
    """An export whose first counterparty is written by hand, the second as usual."""
    second = re.sub(r"\s*<Summary[^>]*/>", "", xml_export([counterparty(2, payments=1)]).decode())
    head, rest = second.split("\n", 1)
    start = rest.index("<Counterparty")
    return (head + "\n" + rest[:start] + root_extra + first + "\n  " + rest[start:]).encode()


PLAIN = (f'<Counterparty id="{guid(1)}"><Debt>1.00</Debt><Payments>'
         f'<Payment id="{guid(5, 1)}" date="2026-11-01" sum="1.00"/></Payments></Counterparty>')


@pytest.mark.parametrize(("why", "first", "root_extra", "cuts"), [
    ("a comment at the root level is stepped over", PLAIN, "<!-- <Counterparty id=\"x\"></Counterparty> -->\n  ", 2),
    ("a comment inside a counterparty", PLAIN.replace("<Debt>", "<!-- note --><Debt>"), "", 0),
    ("CDATA inside a counterparty", PLAIN.replace("1.00</Debt>", "<![CDATA[1.00]]></Debt>"), "", 0),
    ("a counterparty inside a counterparty",
     PLAIN.replace("<Debt>", f'<Counterparty id="{guid(9)}"></Counterparty><Debt>'), "", 0),
    ("an element the filter does not know at the root level", PLAIN, "<Note>hi</Note>\n  ", 0),
])
def test_what_cannot_be_cut_exactly_passes_as_it_is(why: str, first: str, root_extra: str, cuts: int) -> None:
    content = _two(first, root_extra=root_extra)
    everything = Known()
    _filter(content, everything)
    known = Known(set(everything.seen.values()))  # whatever it digested, it now knows

    out, f = _filter(content, known)

    assert len(f.cuts) == cuts, why
    if cuts == 0:
        assert out == content, why
    else:
        assert out.count(PLACEHOLDER.encode()) == 2 and out.count(b"\n") == content.count(b"\n"), why


@pytest.mark.parametrize(("why", "first"), [
    ("a payment whose id is not its first attribute", PLAIN.replace(f'id="{guid(5, 1)}" date="2026-11-01"',
                                                                   f'date="2026-11-01" id="{guid(5, 1)}"')),
    ("a payment id in single quotes", PLAIN.replace(f'id="{guid(5, 1)}"', f"id='{guid(5, 1)}'")),
    ("a payment id with a character reference", PLAIN.replace(f'id="{guid(5, 1)}"',
                                                               f'id="&#x{ord(guid(5, 1)[0]):x};{guid(5, 1)[1:]}"')),
    ("a document due date written with a reference",
     PLAIN.replace("</Payments>", f'</Payments><OpenDocuments><Document id="{guid(7, 2)}" dueDate="2026-10-3&#x31;"/>'
                                  "</OpenDocuments>")),
])
def test_a_known_counterparty_with_ids_written_otherwise_is_left_to_lxml(why: str, first: str) -> None:
    content = _two(first)
    known = _known_after_one_pass(content, guid(1))

    out, f = _filter(content, known)

    assert out == content, why
    assert f.cuts[0].known_as is not None and f.cuts[0].payment_ids is None, why


@pytest.mark.parametrize("end", [b"<Counterparty", b"<Counterparty id=", b"<!-- a note"])
def test_a_file_cut_short_passes_as_it_is(end: bytes) -> None:
    content = xml_export([counterparty(1, payments=1), counterparty(2)])
    first_end = content.index(b"</Counterparty>") + len(b"</Counterparty>")
    cut = content[:first_end] + b"\n  " + end  # the second counterparty, or a comment, begun and cut off
    known = _known_after_one_pass(content, guid(1))

    out, f = _filter(cut, known)

    # The first counterparty is taken apart, everything after it passes as it is, to the cut.
    assert out.startswith(cut[:cut.index(b"<Counterparty")]) and out.endswith(cut[first_end:])
    assert out.count(PLACEHOLDER.encode()) == 1 and len(f.cuts) == 1 and f.cuts[0].payment_ids == [guid(1000, 1)]


def test_the_same_bytes_in_another_declared_encoding_are_another_digest() -> None:
    content = xml_export([counterparty(1, payments=1)])
    assert content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    in_utf8, in_1251 = Known(), Known()
    _filter(content, in_utf8)
    _filter(content.replace(b'encoding="UTF-8"', b'encoding="windows-1251"', 1), in_1251)

    assert in_utf8.seen[guid(1)] != in_1251.seen[guid(1)]


NOT_PLAIN = [
    PLAIN.replace('sum="1.00"/>', 'sum="1.00"><Note/></Payment>'),
    PLAIN.replace("</Payments>", f'</Payments><Extra><Payment id="{guid(6, 1)}" sum="2.00"/></Extra>'),
    PLAIN.replace("<Payments>", "<Payments><Note/>"),
    # (a value element holding an element is refused outright: syncd.formats.xml._odd_value)
    PLAIN.replace("<Debt>1.00</Debt>", '<Debt unit="руб">1.00</Debt>'),
]


@pytest.mark.parametrize("first", NOT_PLAIN)
def test_the_digest_of_a_counterparty_not_plainly_shaped_is_not_offered(tmp_path: Path, first: str) -> None:
    # Ids are taken from the bytes only of known counterparties; one of another shape must never
    # become known by the digest of its bytes, or a payment the reader does not walk would count.
    path = tmp_path / "a.xml"
    path.write_bytes(_two(first))
    with open_export(path, name=path.name, source_tz=MSK) as export:
        first_cp, second_cp = export.changes(DigestIndex(b"salt", Linker(), []))

    assert isinstance(first_cp, Counterparty) and first_cp.digest is None
    assert isinstance(second_cp, Counterparty) and second_cp.digest is not None
