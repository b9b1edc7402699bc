"""The checker's fast path, compiled once from the field table (syncd.contract.fields) when this module
is imported: per record kind, straight-line code that reads each field, parses it, applies its rules
and builds the record, as a hand-written loop would, with no loop over the fields at run time.

Nearly every record of a file is good, and for those this is all the checking there is. Any problem
raises ValueError (AttributeError: an item that is not an object), and the checker then takes the
slow path (syncd.contract.checks), which reports every bad field. tests/test_fields.py shows that both
paths agree on every field, good values and bad.

The generated source is kept (`SOURCES`), so what runs can be read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import Any, Final

from syncd.contract.fields import COUNTERPARTY, DOCUMENT, PAYMENT, Field, Kind
from syncd.contract.records import Counterparty, Document, Payment, default, record_order
from syncd.contract.values import PARSERS, parse_datetime, storable

# What the straight-line code of a payment or document calls when the item holds a name that is not one
# of its fields (or a field whose value is null): (item, raw counterparty, its number).
Stray = Callable[[Any, Any, int], None]
# One payment or document: (item, raw counterparty, its number) -> the record.
ItemConverter = Callable[[Any, Any, int], Any]
# One counterparty, without its payments and documents: raw counterparty -> the record.
CounterpartyConverter = Callable[[Any], Counterparty]


def _reads(kind: Kind, *, item: bool) -> list[str]:
    """v0, v1…: the raw values. An item's fields are its keys; a counterparty's come from its attributes
    and, for those XML spells as elements, from its values (syncd.contract.raw.RawCounterparty)."""
    if item:
        return ["get = item.get", *(f"v{i} = get({f.key!r})" for i, f in enumerate(kind.fields))]
    return ["attrs = raw.attrs.get", "values = raw.values.get",
            *(f"v{i} = {'values' if f.element else 'attrs'}({f.key!r})" for i, f in enumerate(kind.fields))]


def _parse(i: int, f: Field) -> str:
    if f.value == "datetime":
        return f"a{i} = parse_datetime(v{i}, tz)"
    return f"a{i} = parse_{f.value}(v{i})"


def _refusals(fields: tuple[Field, ...]) -> list[str]:
    """The conditions, one per rule, on which a record is refused (amounts only carry rules)."""
    out = []
    for i, f in enumerate(fields):
        if f.required:
            out.append(f"a{i} is None")
        test = {"non_negative": f"a{i} < 0", "non_zero": f"not a{i}", "": ""}[f.rule]
        if test:
            out.append(test if f.required else f"(a{i} is not None and {test})")
    return out


def _zones(fields: tuple[Field, ...]) -> list[str]:
    """A datetime's conversion to UTC and the site's zone is looked at only where its year is at an end
    of the range (see storable): the rest converts anywhere."""
    out = []
    for i, f in enumerate(fields):
        if f.value == "datetime":
            outside = f"not 1000 < a{i}.year < 9999"
            out += [f"if {outside if f.required else f'a{i} is not None and {outside}'}:",
                    f"    storable(v{i}, a{i}, site_tz)"]
    return out


def _build(kind: Kind) -> str:
    position = {f.key: i for i, f in enumerate(kind.fields)}
    args = []
    for f in record_order(kind):
        i = position[f.key]
        args.append(f"a{i}" if f.default is None else f"(d{i} if a{i} is None else a{i})")
    return f"return Record({', '.join(args)})"


def source(kind: Kind, *, item: bool) -> str:
    """The factory of `kind`'s converter, as Python source."""
    fields = kind.fields
    body = _reads(kind, item=item)
    if item:
        present = f"{len(fields)} - ({''.join(f'v{i}, ' for i in range(len(fields)))[:-1]}).count(None)"
        body += [f"if names(item) != {present}:", "    stray(item, raw, index)"]
    body += [_parse(i, f) for i, f in enumerate(fields)]
    refusals = _refusals(fields)
    if refusals:
        body += [f"if {' or '.join(refusals)}:", "    raise ValueError"]
    body += [*_zones(fields), _build(kind)]
    head = ["def make(tz, site_tz, names, stray):",
            f"    def convert({'item, raw, index' if item else 'raw'}):"]
    return "\n".join([*head, *(" " * 8 + line for line in body), "    return convert", ""])


def _compile(kind: Kind, record: type, *, item: bool) -> tuple[str, Callable[..., Any]]:
    text = source(kind, item=item)
    namespace: dict[str, Any] = {f"parse_{value}": parse for value, parse in PARSERS.items()}
    namespace.update(parse_datetime=parse_datetime, storable=storable, Record=record)
    namespace.update({f"d{i}": default(f) for i, f in enumerate(kind.fields) if f.default is not None})
    # The text is made from the table alone, never from what a file holds.
    exec(compile(text, f"<syncd.contract.fastpath: {kind.name}>", "exec"), namespace)
    return text, namespace["make"]


_PAYMENT_SOURCE, _make_payment = _compile(PAYMENT, Payment, item=True)
_DOCUMENT_SOURCE, _make_document = _compile(DOCUMENT, Document, item=True)
_COUNTERPARTY_SOURCE, _make_counterparty = _compile(COUNTERPARTY, Counterparty, item=False)
SOURCES: Final = {"Payment": _PAYMENT_SOURCE, "Document": _DOCUMENT_SOURCE, "Counterparty": _COUNTERPARTY_SOURCE}


def converters(source_tz: tzinfo, bitrix_tz: tzinfo, names: Callable[[Any], int], stray_payment: Stray,
               stray_document: Stray) -> tuple[CounterpartyConverter, ItemConverter, ItemConverter]:
    """One file's converters: a datetime without an offset is in `source_tz` and must convert to
    `bitrix_tz`; `names` counts an item's names (an lxml element's attributes, a dict's keys)."""
    return (_make_counterparty(source_tz, bitrix_tz, None, None),
            _make_payment(source_tz, bitrix_tz, names, stray_payment),
            _make_document(source_tz, bitrix_tz, names, stray_document))
