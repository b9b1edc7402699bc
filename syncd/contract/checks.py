"""From raw records to typed records, and the checks that need the whole file.

The readers (syncd.formats.xml, syncd.formats.json) know the syntax; they hand each counterparty
over as a `RawCounterparty` whose parts answer `.get(name)` and `.keys()` with the contract's
names (lxml elements for XML, dicts for JSON), so one `Checker` serves both formats.

A `Checker` is strict (`open_export`: the first problem raises `ExportError`) or collecting
(`check_file`: every problem is recorded and reading goes on).

What each field is comes from the field table (syncd.contract.fields): a good record goes through the
fast path compiled from it (syncd.contract.fastpath); one with a problem through the slow path here,
which reports every bad field. Ids unique in the whole file: syncd.contract.unique.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from typing import Any, Final, cast

from syncd.contract.fastpath import converters
from syncd.contract.fields import COUNTERPARTY, DOCUMENT, HEADER, LAST_PAYMENT, PAYMENT, SUMMARY, Field, Kind, Value
from syncd.contract.raw import Capacity, Dialect, Fields, KnownDigests, RawCounterparty, counterparty_label
from syncd.contract.records import Counterparty, Document, Header, LastPayment, Payment, Summary, Unchanged
from syncd.contract.unique import Ids, due_label, quiet
from syncd.contract.values import (
    Parser,
    non_negative,
    non_zero,
    parse_count,
    parse_date,
    parse_format_version,
    parse_guid,
    parse_inn,
    parse_kpp,
    parse_mode,
    parsers,
    show,
    storable,
)
from syncd.errors import ExportError

log = logging.getLogger("syncd.formats")

_ZERO: Final = Decimal("0.00")
# A file where every payment is bad would otherwise produce millions of lines (and as many strings).
MAX_PROBLEMS: Final = 1000
_MAX_WARNED: Final = 100

HEADER_KEYS: Final = HEADER.keys
PAYMENT_KEYS: Final = PAYMENT.keys
DOCUMENT_KEYS: Final = DOCUMENT.keys
LAST_PAYMENT_KEYS: Final = LAST_PAYMENT.keys
SUMMARY_KEYS: Final = SUMMARY.keys

# XML spells the counterparty's amounts as elements; messages use the name the 1C developer wrote.
XML_VALUE_ELEMENTS: Final = {f.key: f.xml for f in COUNTERPARTY.elements}


# How each field is parsed on the slow path (a record with a problem), and checked.
_REQUIRED: Final = 1
_NON_NEGATIVE: Final = 2
_NON_ZERO: Final = 4
_RULES: Final = {"": 0, "non_negative": _NON_NEGATIVE, "non_zero": _NON_ZERO}
_Spec = tuple[str, Parser, int]


def rule_flags(f: Field) -> int:
    """The field's rules as the slow path's flags."""
    return (_REQUIRED if f.required else 0) | _RULES[f.rule]


def _spec(kind: Kind, parse: Mapping[Value, Parser]) -> tuple[_Spec, ...]:
    return tuple((f.key, parse[f.value], rule_flags(f)) for f in kind.fields)


def _amount_checks(value: object, flags: int) -> None:
    if isinstance(value, Decimal):
        if flags & _NON_NEGATIVE:
            non_negative(value)
        if flags & _NON_ZERO:
            non_zero(value)


@dataclass
class _Tally:
    """Counts and totals of what the file holds (counts include records with problems)."""

    counterparties: int = 0
    payments: int = 0
    documents: int = 0
    debt: Decimal = _ZERO
    overdue_debt: Decimal = _ZERO
    payments_sum: Decimal = _ZERO
    outstanding: Decimal = _ZERO


class Checker:
    """Turns raw records into typed ones and checks the file as a whole."""

    def __init__(self, file: str, source_tz: tzinfo, *, dialect: Dialect, strict: bool,
                 totals: bool = False, quiet: bool = False, capacity: Capacity | None = None,
                 bitrix_tz: tzinfo | None = None) -> None:
        self.file = file
        self.capacity = capacity
        self.source_tz = source_tz
        # Where the blocks store times; every datetime must convert to it (and to UTC) here, in the checks.
        self.bitrix_tz: tzinfo = bitrix_tz or source_tz
        self.dialect: Dialect = dialect
        self.strict = strict
        self.quiet = quiet
        self.problems: list[str] = []
        self.more_problems = 0  # found after MAX_PROBLEMS, counted but not kept
        self.tally = _Tally()
        self.summary: Summary | None = None
        self.summary_where: str | None = None
        self._totals = totals
        self._warned: set[str] = set()
        # How many names an item has: an lxml element's attributes, a JSON object's keys. Counting them
        # against the known names found is a fifth of the cost of comparing the names.
        self._names: Callable[[Any], int] = _attribute_count if dialect == "xml" else len
        # Set by the caller before reading records: counterparties whose digest it knows are checked
        # for their ids only (see unchanged()).
        self.known: KnownDigests | None = None
        self.ids = Ids()  # counterparty ids, payment ids, document (id, dueDate) keys: each unique in the file
        self._parsers = parsers(source_tz, self.bitrix_tz)
        self._payment_spec = _spec(PAYMENT, self._parsers)
        self._document_spec = _spec(DOCUMENT, self._parsers)
        self._convert_counterparty, self._convert_payment, self._convert_document = converters(
            source_tz, self.bitrix_tz, self._names, self._stray("payment", PAYMENT), self._stray("document", DOCUMENT))

    def close(self) -> None:
        """Release the id hashes' temporary files; problems, tally and summary stay readable."""
        self.ids.close()

    # -- reporting ---------------------------------------------------------------------------

    def problem(self, message: str, *, where: str | None = None, field: str | None = None) -> None:
        error = ExportError(self.file, message, where=where, field=field)
        if self.strict:
            raise error
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(str(error))
        else:
            self.more_problems += 1

    def unknown(self, what: str, where: str | None) -> None:
        """An element, attribute or key the contract does not know: ignored, one warning per name."""
        if what in self._warned or self.quiet or len(self._warned) > _MAX_WARNED:
            return
        self._warned.add(what)
        if len(self._warned) > _MAX_WARNED:
            log.warning("%s: more than %d unknown names; the rest are ignored without a warning", self.file,
                        _MAX_WARNED)
            return
        place = f"{where}: " if where else ""
        log.warning("%s: %sunknown %s ignored (not reported again for this file)", self.file, place, what)

    def _stray(self, what: str, kind: Kind) -> Callable[[Any, RawCounterparty, int], None]:
        """What the fast path calls for an item with a name that is not one of its fields."""
        keys, owner = kind.keys, kind.name
        return lambda item, raw, index: self._unknown_keys(item, keys, owner, self.item_where(raw, what, index, item))

    def _unknown_keys(self, item: Fields, known: frozenset[str], owner: str, where: str | None) -> None:
        for key in item.keys():  # noqa: SIM118 - item may be an lxml element, whose iteration gives children
            if key not in known:
                self.unknown(self._key_label(key, owner), where)

    def _key_label(self, key: str, owner: str) -> str:
        if self.dialect == "xml":
            return f"attribute {key!r} of {owner}"
        return f"key {key!r} in {owner.lower()}"

    def _field_label(self, key: str, owner: str) -> str:
        if owner == "Counterparty" and self.dialect == "xml" and key in XML_VALUE_ELEMENTS:
            return XML_VALUE_ELEMENTS[key]
        if owner == "LastPayment":
            return f"LastPayment {key}" if self.dialect == "xml" else f"lastPayment.{key}"
        return key

    # -- locations, built only when something is reported ------------------------------------

    @staticmethod
    def _counterparty_label(raw: RawCounterparty) -> str:
        return counterparty_label(raw.index, raw.attrs.get("id"))

    def counterparty_where(self, raw: RawCounterparty) -> str:
        label = self._counterparty_label(raw)
        return f"line {raw.line}, {label}" if raw.line is not None else label

    def item_where(self, raw: RawCounterparty, kind: str, index: int, item: object) -> str:
        label = f"{kind} #{index} of {self._counterparty_label(raw)}"
        line = getattr(item, "sourceline", None)
        return f"line {line}, {label}" if line is not None else label

    # -- header and summary -------------------------------------------------------------------

    def header(self, fields: Fields, *, where: str | None = None) -> Header | None:
        """The export's header, or None (collecting mode) when it has a problem."""
        problems = len(self.problems) + self.more_problems
        rules = {f.key: rule_flags(f) for f in HEADER.fields}
        version = self._field(fields, "formatVersion", parse_format_version, rules["formatVersion"], where, "header")
        export_id = self._field(fields, "exportId", self._parsers["guid"], rules["exportId"], where, "header")
        generated_at = self._field(fields, "generatedAt", self._parsers["datetime"], rules["generatedAt"], where,
                                   "header")
        mode = self._field(fields, "mode", parse_mode, rules["mode"], where, "header") or "full"
        # The window starts at midnight in generatedAt's zone, compared with payment times in the site's.
        zone = generated_at.tzinfo if isinstance(generated_at, datetime) else self.source_tz
        site_tz = self.bitrix_tz
        payments_from = self._field(fields, "paymentsFrom", lambda v: _window_start(v, zone, site_tz),
                                    rules["paymentsFrom"], where, "header")
        if len(self.problems) + self.more_problems > problems or export_id is None or generated_at is None:
            return None
        assert isinstance(version, str) and isinstance(export_id, str)
        assert mode in ("full", "delta")
        return Header(
            export_id=export_id,
            generated_at=generated_at,  # type: ignore[arg-type]
            mode=mode,
            payments_from=payments_from,  # type: ignore[arg-type]
            format_version=version,
        )

    def set_summary(self, fields: Fields, *, where: str | None, owner: str = "Summary") -> None:
        if self.summary is not None:
            self.problem(f"a second {owner} (there must be at most one)", where=where)
            return
        self._unknown_keys(fields, SUMMARY_KEYS, owner, where)
        counts: list[int] = []
        for f in SUMMARY.fields:
            key = f.key
            value = fields.get(key)
            if value is None:
                self.problem(f"{owner} lacks the count of {key}", where=where, field=key)
                return
            try:
                counts.append(parse_count(value))
            except ValueError as e:
                self.problem(str(e), where=where, field=key)
                return
        self.summary = Summary(*counts)
        self.summary_where = where

    # -- records ------------------------------------------------------------------------------

    def _field(self, item: Fields, key: str, parse: Callable[[object], object], flags: int,
               where: str | None, owner: str) -> object:
        raw = item.get(key)
        try:
            value = parse(raw)
            if value is None and flags & _REQUIRED:
                if raw is None:
                    raise ValueError("missing: this field is required")
                raise ValueError(f"{show(raw)} means empty, but this field is required")
            _amount_checks(value, flags)
            return value
        except ValueError as e:
            self.problem(str(e), where=where, field=self._field_label(key, owner))
            return None

    def _fields(self, item: object, spec: Sequence[_Spec], where: str, owner: str) -> dict[str, object]:
        if not hasattr(item, "get") or not hasattr(item, "keys"):
            self.problem(f"{show(item)} is not a {owner.lower()}: expected an object", where=where)
            return {}
        fields = cast(Fields, item)
        return {key: self._field(fields, key, parse, flags, where, owner) for key, parse, flags in spec}

    def counterparty(self, raw: RawCounterparty) -> Counterparty | None:
        """The typed counterparty, or None (collecting mode) when it or one of its items is bad."""
        tally = self.tally
        tally.counterparties += 1
        problems = len(self.problems) + self.more_problems
        record: Counterparty | None
        try:
            record = self._convert_counterparty(raw)
            cid: str | None = record.id
        except ValueError:
            cid = self._counterparty_problems(raw)
            record = None
        if cid is not None:
            self.ids.counterparties.add(hash(cid))
        if raw.last_payment is not None:
            last = self._last_payment(raw)
            if record is not None:
                record.last_payment = last
        payments, payments_ok = self._payments(raw)
        documents, documents_ok = self._documents(raw)
        if record is None or not payments_ok or not documents_ok:
            if len(self.problems) + self.more_problems == problems:  # pragma: no cover - never drop silently
                self.problem("this counterparty could not be read", where=self.counterparty_where(raw))
            return None
        record.payments = payments
        record.documents = documents
        if self.capacity is not None and not self._fits(raw, record, self.capacity):
            return None
        if self._totals:
            tally.debt += record.debt
            tally.overdue_debt += record.overdue_debt
            tally.payments_sum += sum((p.sum for p in payments), _ZERO)
            tally.outstanding += sum((d.outstanding for d in documents), _ZERO)
        return record

    def _fits(self, raw: RawCounterparty, record: Counterparty, capacity: Capacity) -> bool:
        """Whether the database can store every value of `record`; reports the first that it cannot."""
        found = capacity.check(record)
        if found is None:
            return True
        kind, index, key, message = found
        if kind == "counterparty":
            where = self.counterparty_where(raw)
        else:  # a typed record's items are its raw ones, in order: every one of them was good
            items = raw.payments if kind == "payment" else raw.documents
            where = self.item_where(raw, kind, index, items[index - 1])
        self.problem(message, where=where, field=key)
        return False

    def match(self, raw: RawCounterparty) -> bool:
        """Digest `raw.content` (setting `raw.digested`) and look it up: True when the writer holds it
        (`raw.known_as` is set). A reader calls it before looking any further into a counterparty: one
        that matches was read in full and passed every check when it was applied, so its ids are all
        that is still needed. A value that does not parse gives no digest: the full check reports it."""
        known, content = self.known, raw.content
        if known is None or content is None:
            return False
        attrs = raw.attrs
        try:
            cid = parse_guid(attrs.get("id"))
            if cid is None:
                return False
            digest = known.digest(cid, parse_inn(attrs.get("inn")), parse_kpp(attrs.get("kpp")), content)
        except (ValueError, AttributeError):
            return False
        raw.digested = (cid, digest)
        raw.known_as = known.find(digest)
        return raw.known_as is not None

    def unchanged(self, raw: RawCounterparty, cid: str, digest: str, ref: object = None) -> Unchanged:
        """A counterparty whose digest the writer knows: the same bytes passed every check when they
        were applied, so only what depends on the rest of the file is checked: ids and counts."""
        self.tally.counterparties += 1
        self.ids.counterparties.add(hash(cid))
        # These bytes passed parse_guid when they were applied, so each id is a 36-character GUID and
        # its lower case is what parse_guid gives, at a fifth of the cost (1.2 M ids in an L export).
        if raw.payment_ids is not None and raw.document_keys is not None:
            paid = [hash(i) for i in raw.payment_ids]
            owed = [hash((i, parse_date(due))) for i, due in raw.document_keys]
        else:
            paid = [hash(_lower_guid(item.get("id"))) for item in raw.payments]
            owed = [hash((_lower_guid(item.get("id")), parse_date(item.get("dueDate")))) for item in raw.documents]
        self.ids.payments.add_all(paid)
        self.ids.documents.add_all(owed)
        self.tally.payments += len(paid)
        self.tally.documents += len(owed)
        return Unchanged(cid, digest, len(paid), len(owed), ref)

    def _counterparty_problems(self, raw: RawCounterparty) -> str | None:
        """Slow path: report every bad field of the counterparty; return its id if that one is good."""
        where = self.counterparty_where(raw)
        parse = self._parsers
        good = {f.key: self._field(raw.values if f.element else raw.attrs, f.key, parse[f.value], rule_flags(f), where,
                                   "Counterparty")
                for f in COUNTERPARTY.fields}
        cid = good.get("id")
        return cid if isinstance(cid, str) else None

    def _last_payment(self, raw: RawCounterparty) -> LastPayment | None:
        item = raw.last_payment
        where = self.counterparty_where(raw)
        if not hasattr(item, "get"):
            self.problem(f"{show(item)} is not a last payment: expected an object with date and sum",
                         where=where, field=self._field_label("", "LastPayment").rstrip(". "))
            return None
        assert item is not None
        self._unknown_keys(item, LAST_PAYMENT_KEYS, "LastPayment", where)
        good = {f.key: self._field(item, f.key, self._parsers[f.value], rule_flags(f), where, "LastPayment")
                for f in LAST_PAYMENT.fields}
        day, amount = good.get("date"), good.get("sum")
        if day is None and amount is None:
            return None  # 1C writes an empty LastPayment for a counterparty that never paid
        if not isinstance(day, date) or not isinstance(amount, Decimal):
            missing = "date" if day is None else "sum"
            if item.get(missing) in (None, ""):
                self.problem("a last payment needs both date and sum", where=where,
                             field=self._field_label(missing, "LastPayment"))
            return None
        return LastPayment(day, amount)

    def _payments(self, raw: RawCounterparty) -> tuple[list[Payment], bool]:
        out: list[Payment] = []
        ok = True
        seen: set[str] = set()
        hashes: list[int] = []  # handed to the spill once per counterparty
        add_hash = hashes.append
        convert = self._convert_payment
        index = 0
        for index, item in enumerate(raw.payments, 1):
            try:
                payment = convert(item, raw, index)
            except (ValueError, AttributeError):
                ok = False
                good = self._fields(item, self._payment_spec, self.item_where(raw, "payment", index, item),
                                    "Payment")
                pid = good.get("id")
                if not isinstance(pid, str):
                    continue
            else:
                out.append(payment)
                pid = payment.id
            if pid in seen:
                ok = False
                first = next(i for i, p in enumerate(raw.payments, 1) if quiet(parse_guid, p.get("id")) == pid)
                self.problem(
                    f"payment id {pid} appears twice in this counterparty (first as payment #{first}"
                    f"{self._line_suffix(raw.payments[first - 1])}); payment ids must be unique in the file",
                    where=self.item_where(raw, "payment", index, item), field="id")
                continue
            seen.add(pid)
            add_hash(hash(pid))
        self.ids.payments.add_all(hashes)
        self.tally.payments += index
        return out, ok

    def _documents(self, raw: RawCounterparty) -> tuple[list[Document], bool]:
        out: list[Document] = []
        ok = True
        seen: set[tuple[str, date | None]] = set()
        hashes: list[int] = []  # handed to the spill once per counterparty
        add_hash = hashes.append
        convert = self._convert_document
        index = 0
        for index, item in enumerate(raw.documents, 1):
            try:
                document = convert(item, raw, index)
            except (ValueError, AttributeError):
                ok = False
                good = self._fields(item, self._document_spec,
                                    self.item_where(raw, "document", index, item), "Document")
                did = good.get("id")
                if not isinstance(did, str) or ("dueDate" in good and good["dueDate"] is None and
                                                item.get("dueDate") not in (None, "")):
                    continue
                due = cast("date | None", good.get("dueDate"))
            else:
                out.append(document)
                did, due = document.id, document.due_date
            key = (did, due)
            if key in seen:
                ok = False
                self.problem(
                    f"document {did}{due_label(due)} appears twice in this counterparty; "
                    "a document may appear once per due date", where=self.item_where(raw, "document", index, item),
                    field="id")
                continue
            seen.add(key)
            add_hash(hash(key))
        self.ids.documents.add_all(hashes)
        self.tally.documents += index
        return out, ok

    @staticmethod
    def _line_suffix(item: object) -> str:
        line = getattr(item, "sourceline", None)
        return f", line {line}" if line is not None else ""

    # -- the whole file -----------------------------------------------------------------------

    def finish(self, rescan: Callable[[], Iterator[RawCounterparty]]) -> None:
        """After the last record: the Summary counts, then ids seen twice (found by `rescan`)."""
        tally = self.tally
        if self.summary is not None:
            for what, declared, found in (("counterparties", self.summary.counterparties, tally.counterparties),
                                          ("payments", self.summary.payments, tally.payments),
                                          ("documents", self.summary.documents, tally.documents)):
                if declared != found:
                    self.problem(
                        f"the summary says {declared} {what} but the file holds {found}: the export is "
                        "cut short or damaged; ask 1C to export again", where=self.summary_where, field=what)
        self.ids.report(rescan, self)


def _window_start(value: object, zone: tzinfo | None, bitrix_tz: tzinfo) -> date | None:
    """paymentsFrom: a date whose midnight (in generatedAt's zone) converts to the site's zone."""
    day = parse_date(value)
    if day is not None:
        storable(value, datetime.combine(day, time(0), zone), bitrix_tz)
    return day


def _lower_guid(value: object) -> object:
    return value.lower() if type(value) is str else parse_guid(value)


def _attribute_count(element: Any) -> int:
    return len(element.attrib)


def records_of(checker: Checker, raws: Iterable[RawCounterparty]) -> Iterator[Counterparty]:
    """Typed counterparties from raw ones; bad ones are skipped (collecting) or raise (strict)."""
    convert = checker.counterparty
    for raw in raws:
        record = convert(raw)
        if record is not None:
            yield record


def changes_of(checker: Checker, raws: Iterable[RawCounterparty], known: KnownDigests
               ) -> Iterator[Counterparty | Unchanged]:
    """Like records_of, but a counterparty whose digest `known` holds comes out as Unchanged, unparsed."""
    checker.known = known
    convert, unchanged = checker.counterparty, checker.unchanged
    for raw in raws:
        # The readers call checker.match on each counterparty as they read it.
        found = raw.digested
        if found is not None and raw.known_as is not None:
            yield unchanged(raw, *found, raw.known_as)
            continue
        record = convert(raw)
        if record is not None:
            record.digest = found[1] if found is not None else None
            yield record
