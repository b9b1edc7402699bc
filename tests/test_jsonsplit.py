"""KnownFilter (JSON): known counterparties cut out of the bytes; everything else passes byte for byte.

What it must never do: change a byte ijson reads other than by swapping a whole known counterparty for
the placeholder `0`; take ids from the bytes that differ from what ijson would build; or take apart
anything it cannot cut exactly.
"""

from __future__ import annotations

import io
import json
import random
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ijson
import pytest

from syncd.bitrix.hlblock import DigestIndex
from syncd.bitrix.users import Linker
from syncd.contract.records import Counterparty, Unchanged
from syncd.errors import ExportError
from syncd.formats import open_export
from syncd.formats.shortcut.jsonsplit import PLACEHOLDER, KnownFilter
from tests.exports import counterparty, guid, json_export
from tests.known import Known

MSK = ZoneInfo("Europe/Moscow")
SAMPLE = Path(__file__).resolve().parent.parent / "syncd" / "samples" / "settlements_sample.json"
ARRAY = re.compile(rb'"counterparties"\s*:\s*\[')


def _filter(content: bytes, known: Known, *, read: int = 4096) -> tuple[bytes, KnownFilter]:
    """The bytes the filter hands over for the array and what follows it, the rest as they are."""
    start = ARRAY.search(content).end()  # type: ignore[union-attr]
    source = io.BytesIO(content[start + 10:])
    f = KnownFilter(source, content[start:start + 10], known)  # type: ignore[arg-type]
    out = [content[:start]]
    while chunk := f.read(read):
        out.append(chunk)
    return b"".join(out), f


def _placeholders(out: bytes) -> int:
    return list(ijson.items(out, "counterparties.item")).count(0)


def _known_after_one_pass(content: bytes, *ids: str) -> Known:
    first = Known()
    _filter(content, first)
    return Known({first.seen[i] for i in ids})


def _compact(content: bytes) -> bytes:
    return json.dumps(json.loads(content), ensure_ascii=False, separators=(",", ":")).encode()


def _as_1c(content: bytes) -> bytes:
    """Written as 1C's JSON writer does: tabs, a key per line."""
    return json.dumps(json.loads(content), ensure_ascii=False, indent="\t").encode()


def test_with_nothing_known_every_byte_passes_and_every_counterparty_is_digested() -> None:
    built = json_export([counterparty(n, payments=n % 3, documents=1) for n in range(1, 6)])
    for content in (SAMPLE.read_bytes(), built):
        for variant in (content, _compact(content), _as_1c(content)):
            known = Known()

            out, f = _filter(variant, known)

            assert out == variant
            parsed = json.loads(variant)["counterparties"]
            assert [c.cid for c in f.cuts] == [cp["id"] for cp in parsed] == list(known.seen)
            assert all(c.digest and c.known_as is None and c.payment_ids is None for c in f.cuts)


@pytest.mark.parametrize("layout", ["indented", "compact", "1c"])
def test_a_known_counterparty_becomes_the_placeholder_and_its_ids_come_from_its_bytes(layout: str) -> None:
    cps = [counterparty(1, payments=2, documents=1), counterparty(2, payments=1), counterparty(3),
           counterparty(4, payments=1)]
    cps[0]["payments"][0]["id"] = cps[0]["payments"][0]["id"].upper()  # compared in lower case
    cps[0]["openDocuments"][0]["dueDate"] = None
    content = {"indented": json_export, "compact": lambda c: _compact(json_export(c)),
               "1c": lambda c: _as_1c(json_export(c))}[layout](cps)
    known = _known_after_one_pass(content, guid(1), guid(3), guid(4))

    out, f = _filter(content, known)

    parsed = json.loads(out)["counterparties"]
    assert parsed[0] == 0 and parsed[1]["id"] == guid(2) and parsed[2:] == [0, 0]
    assert json.loads(out)["summary"] == json.loads(content)["summary"]
    first, second, third, fourth = f.cuts
    assert first.known_as is not None and first.payment_ids == [guid(1000, 1), guid(1001, 1)]
    assert first.document_keys == [(guid(1000, 2), None)]
    assert (second.known_as, second.payment_ids, second.digest is not None) == (None, None, True)
    assert (third.payment_ids, third.document_keys) == ([], [])
    assert fourth.payment_ids == [guid(4000, 1)]


def _two(first: str) -> bytes:
    """An export whose first counterparty is written by hand, the second as usual."""
    content = json_export([counterparty(2, payments=1)], summary=False)
    at = ARRAY.search(content).end()  # type: ignore[union-attr]
    return content[:at] + b"\n  " + first.encode() + b"," + content[at:]


PLAIN = (f'{{"id": "{guid(1)}", "inn": "7700000001", "debt": "1.00", "payments": ['
         f'{{"id": "{guid(5, 1)}", "number": "1", "date": "2026-11-01", "sum": "1.00"}}], "openDocuments": ['
         f'{{"id": "{guid(7, 2)}", "kind": "invoice", "number": "2", "date": "2026-10-01", '
         f'"dueDate": "2026-10-31", "amount": "1.00", "outstanding": "1.00"}}]}}')


@pytest.mark.parametrize(("why", "first"), [
    ("a string holding a bracket", PLAIN.replace('"debt"', '"name": "ООО [Ромашка] {1}", "debt"')),
    ("a string with an escaped quote", PLAIN.replace('"debt"', '"name": "ООО \\"Ромашка\\"", "debt"')),
    ("payments twice", PLAIN.replace('"debt": "1.00"', f'"payments": [{{"id": "{guid(6, 1)}"}}], "debt": "1.00"')),
    ("the key as a value elsewhere", PLAIN.replace('"debt"', '"name": "payments", "debt"')),
    ("a payment with its id key twice", PLAIN.replace('"date"', f'"id": "{guid(6, 1)}", "date"')),
    ("a document with dueDate twice", PLAIN.replace('"amount"', '"dueDate": "2026-10-30", "amount"')),
    ("a document due date that is not a string", PLAIN.replace('"2026-10-31"', "20261031")),
    ("payments that are not an array", PLAIN.replace('"payments": [', '"payments": null, "x": [')),
    ("an object inside lastPayment", PLAIN.replace('"debt"', '"lastPayment": {"date": "2026-11-01", "x": {}}, "debt"')),
])
def test_a_known_counterparty_whose_ids_cannot_be_taken_exactly_is_left_to_ijson(why: str, first: str) -> None:
    content = _two(first)
    known = _known_after_one_pass(content, guid(1))

    out, f = _filter(content, known)

    assert out == content, why
    assert f.cuts[0].known_as is not None and f.cuts[0].payment_ids is None, why


@pytest.mark.parametrize(("why", "array", "cuts"), [
    ("an empty array", b"[]", 0),
    ("a value that is not an object", b"[null, " + PLAIN.encode() + b"]", 0),
    ("an array inside a payment (deeper than a counterparty's)",
     b"[" + PLAIN.replace('"sum": "1.00"}', '"sum": "1.00", "tags": []}').encode() + b", " + PLAIN.encode() + b"]", 0),
    ("not valid JSON between elements", b"[" + PLAIN.encode() + b" x, " + PLAIN.encode() + b"]", 1),
])
def test_what_cannot_be_cut_exactly_passes_as_it_is(why: str, array: bytes, cuts: int) -> None:
    content = b'{"formatVersion": 1, "counterparties": ' + array + b', "summary": {}}'
    everything = Known()
    _filter(content, everything)
    known = Known(set(everything.seen.values()))  # whatever it digested, it now knows

    out, f = _filter(content, known)

    assert len(f.cuts) == cuts, why
    if cuts:
        # The first is cut; at the stray "x" the filter stops, and ijson is left to refuse the rest.
        assert out.startswith(content[:content.index(b"[") + 1] + PLACEHOLDER + b" x, "), why
        assert out.endswith(content[content.index(b" x, "):]), why
    else:
        assert out == content, why


@pytest.mark.parametrize("end", [b"{", b'{"id": "', b'{"id": "' + guid(2).encode() + b'", "payments": [{"id"'])
def test_a_file_cut_short_passes_as_it_is(end: bytes) -> None:
    content = json_export([counterparty(1, payments=1), counterparty(2)])
    second = content.index(b'{\n   "id": "' + guid(2).encode())
    cut = content[:second] + end
    known = _known_after_one_pass(content, guid(1))

    out, f = _filter(cut, known)

    assert out.endswith(b"[\n  " + PLACEHOLDER + cut[cut.rindex(b",", 0, second):])
    assert len(f.cuts) == 1 and f.cuts[0].payment_ids == [guid(1000, 1)]


def test_an_export_read_in_small_pieces_is_cut_the_same() -> None:
    content = json_export([counterparty(n, payments=3, documents=2) for n in range(1, 30)])
    known = _known_after_one_pass(content, *(guid(n) for n in range(1, 30, 2)))
    whole, f_whole = _filter(content, known)

    # A source that hands over a few bytes at a time: every boundary falls somewhere mid-element.
    class Trickle(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return super().read(7)

    start = ARRAY.search(content).end()  # type: ignore[union-attr]
    f = KnownFilter(Trickle(content[start:]), b"", known)  # type: ignore[arg-type]
    pieces = content[:start] + b"".join(iter(lambda: f.read(100), b""))

    assert pieces == whole and _placeholders(whole) == 15
    assert [c.payment_ids for c in f.cuts] == [c.payment_ids for c in f_whole.cuts]


def _random_counterparty(rnd: random.Random, n: int) -> dict[str, Any]:
    """A counterparty with the oddities a real file may have: strings with brackets, quotes and
    backslashes, ids in upper case, documents without or with a null due date, keys in any order."""
    cp = counterparty(n, payments=rnd.randint(0, 4), documents=rnd.randint(0, 3))
    odd = ["ООО «Ромашка»", 'ООО "Ромашка"', "ИП [Петров]", "a\\b", "{x}", "payments", "id", 'x": "y']
    cp["name"] = rnd.choice(odd) if rnd.random() < 0.3 else cp["name"]
    if rnd.random() < 0.3:
        cp["kpp"] = "770101001"
    for p in cp["payments"]:
        p["purpose"] = rnd.choice(odd) if rnd.random() < 0.05 else "Оплата по счёту № 1"
        if rnd.random() < 0.2:
            p["id"] = p["id"].upper()
    for d in cp["openDocuments"]:
        choice = rnd.random()
        if choice < 0.2:
            del d["dueDate"]
        elif choice < 0.3:
            d["dueDate"] = None
    if rnd.random() < 0.3:
        cp["lastPayment"] = {"date": "2026-11-01", "sum": "1.00"}
    keys = list(cp)
    if rnd.random() < 0.5:
        rnd.shuffle(keys)
    return {k: cp[k] for k in keys}


@pytest.mark.parametrize("seed", range(6))
def test_ids_taken_from_the_bytes_are_those_ijson_builds(seed: int) -> None:
    rnd = random.Random(seed)
    cps = [_random_counterparty(rnd, n) for n in range(1, 60)]
    indent = [None, 1, "\t"][seed % 3]
    content = json.dumps({"formatVersion": 1, "counterparties": cps}, ensure_ascii=False, indent=indent).encode()
    everything = Known()
    _filter(content, everything)
    # Those whose id is not among the keys before their first nested value are not digested here
    # (the reader digests what ijson built).
    assert len(everything.seen) >= 30
    known = Known(set(everything.seen.values()))

    out, f = _filter(content, known)

    taken = 0
    for cp, cut in zip(cps, f.cuts, strict=True):
        assert (cut.known_as is not None) == (cp["id"] in everything.seen)
        if cut.payment_ids is None:
            continue
        taken += 1
        assert cut.payment_ids == [p["id"].lower() for p in cp["payments"]]
        assert cut.document_keys == [(d["id"], d.get("dueDate")) for d in cp["openDocuments"]]
    assert taken >= 10  # most are taken apart; the rest are left to ijson
    assert _placeholders(out) == taken


def _changes(path: Path, index: DigestIndex) -> list[Counterparty | Unchanged]:
    with open_export(path, name=path.name, source_tz=MSK) as export:
        return list(export.changes(index))


def _index(records: list[Counterparty | Unchanged]) -> DigestIndex:
    rows = [(r.digest, n, None) for n, r in enumerate(records, 1) if r.digest]
    return DigestIndex(b"salt", Linker(), rows)


@pytest.mark.parametrize("first", [
    PLAIN,
    # The INN after a nested value: not among the first keys the filter reads.
    PLAIN.replace('"inn": "7700000001", ', "").replace('"openDocuments"', '"inn": "7700000001", "openDocuments"'),
])
def test_a_second_read_of_the_same_file_finds_every_counterparty_unchanged(tmp_path: Path, first: str) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(_two(first))
    records = _changes(path, DigestIndex(b"salt", Linker(), []))
    assert [type(r) for r in records] == [Counterparty, Counterparty] and all(r.digest for r in records)

    again = _changes(path, _index(records))

    assert [type(r) for r in again] == [Unchanged, Unchanged]
    assert [(r.payments, r.documents) for r in again if isinstance(r, Unchanged)] == [(1, 1), (1, 0)]


def test_a_payment_id_of_a_known_counterparty_repeated_by_a_changed_one_rejects_the_file(tmp_path: Path) -> None:
    cps = [counterparty(n, payments=2) for n in range(1, 5)]
    path = tmp_path / "a.json"
    path.write_bytes(json_export(cps))
    records = _changes(path, DigestIndex(b"salt", Linker(), []))
    cps[3]["payments"][1]["id"] = cps[1]["payments"][0]["id"]  # the fourth now repeats one of the second's
    path.write_bytes(json_export(cps))

    with pytest.raises(ExportError) as e:
        _changes(path, _index(records))

    assert f"payment id {guid(2000, 1)} is listed 2 times" in str(e.value)


def test_ids_after_a_vertical_tab_or_form_feed_are_left_to_ijson(tmp_path: Path) -> None:
    # ijson takes \v and \f for whitespace; the patterns that take ids apart do not, so a second "id"
    # key written with one must not hide from them: the span is left to ijson, which keeps the last id.
    first = PLAIN.replace('"number": "1"', f'"id"\f: "{guid(6, 1)}", "number": "1"')
    content = _two(first)
    known = _known_after_one_pass(content, guid(1))

    out, f = _filter(content, known)

    assert out == content and f.cuts[0].known_as is not None and f.cuts[0].payment_ids is None
    # End to end: a payment with its id key twice is refused when first read, so such bytes never
    # become known (syncd.formats.jsonkeys).
    path = tmp_path / "a.json"
    path.write_bytes(content)
    with pytest.raises(ExportError, match=f"payment #1 of counterparty #1 \\(id={guid(1)}\\): field id: the key 'id' "
                                          "appears twice"):
        _changes(path, DigestIndex(b"salt", Linker(), []))


@pytest.mark.parametrize("junk", [b".5", b"e5", b"E+0"])
def test_a_placeholder_never_joins_the_bytes_after_it_into_valid_json(tmp_path: Path, junk: bytes) -> None:
    # With every header key before the array, so that the file is read once, through the filter.
    good = json_export([counterparty(1, payments=1), counterparty(2)], payments_from="2026-08-01")
    path = tmp_path / "a.json"
    path.write_bytes(good)
    records = _changes(path, DigestIndex(b"salt", Linker(), []))
    comma = good.rindex(b",", 0, good.index(b'"id": "' + guid(2).encode()))
    path.write_bytes(good[:comma] + junk + good[comma:])  # "0" + ".5" would read as the number 0.5

    with pytest.raises(ExportError, match="not valid JSON"):
        _changes(path, _index(records))


def test_a_separator_seen_only_now_and_then_stops_being_looked_for() -> None:
    # The fast way looks ahead for the separator between the first two elements; when the others are
    # written differently that look-ahead would find it far away for every element. The output must
    # stay exact, and after a few such elements the filter must stop looking.
    cps = [json.dumps(counterparty(n), ensure_ascii=False, separators=(",", ":")) for n in range(1, 60)]
    body = cps[0] + ",\n  " + ", ".join(cps[1:-1]) + ",\n  " + cps[-1]
    content = ('{"formatVersion":1,"counterparties":[' + body + '],"summary":{}}').encode()
    known = _known_after_one_pass(content, *(guid(n) for n in range(1, 60)))

    out, f = _filter(content, known)

    assert _placeholders(out) == 59 and len(f.cuts) == 59
    assert f._lead == b""
