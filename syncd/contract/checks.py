"""From raw records to typed records, and the checks that need the whole file.

The readers (syncd.formats.xml, syncd.formats.json) know the syntax; they hand each counterparty
over as a `RawCounterparty` whose parts answer `.get(name)` and `.keys()` with the contract's
names (lxml elements for XML, dicts for JSON), so one `Checker` serves both formats.

A `Checker` is strict (`open_export`: the first problem raises `ExportError`) or collecting
(`check_file`: every problem is recorded and reading goes on).

Ids must be unique in the whole file, and a file may hold millions of payments. Keeping every id
string would cost hundreds of bytes per payment, and even one 64-bit hash per id in memory would
grow with the file, so the first pass hands one hash per id to a `HashSpill` (syncd.contract.idspill) per
kind, which keeps a few hundred KiB in memory and the rest in an anonymous temporary file, and
compares them at the end one partition at a time. Only if two hashes are equal does a second pass
over the file look for the actual ids, so a hash collision never becomes a reported problem.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from typing import Any, Final, cast

from syncd.contract.idspill import HashSpill
from syncd.contract.raw import Capacity, Dialect, Fields, KnownDigests, RawCounterparty, counterparty_label
from syncd.contract.records import Counterparty, Document, Header, LastPayment, Payment, Summary, Unchanged
from syncd.contract.values import (
    non_negative,
    non_zero,
    parse_amount,
    parse_count,
    parse_currency,
    parse_date,
    parse_datetime,
    parse_document_kind,
    parse_format_version,
    parse_guid,
    parse_inn,
    parse_kpp,
    parse_mode,
    parse_payment_kind,
    parse_text,
    show,
)
from syncd.errors import ExportError

log = logging.getLogger("syncd.formats")



_ZERO: Final = Decimal("0.00")
# A file where every payment is bad would otherwise produce millions of lines (and as many strings).
MAX_PROBLEMS: Final = 1000
_MAX_WARNED: Final = 100

HEADER_KEYS: Final = frozenset({"formatVersion", "exportId", "generatedAt", "mode", "paymentsFrom"})
PAYMENT_KEYS: Final = frozenset({"id", "date", "sum", "number", "kind", "purpose"})
DOCUMENT_KEYS: Final = frozenset({"id", "kind", "number", "date", "dueDate", "amount", "outstanding"})
LAST_PAYMENT_KEYS: Final = frozenset({"date", "sum"})
SUMMARY_KEYS: Final = frozenset({"counterparties", "payments", "documents"})

# XML spells the counterparty's amounts as elements; messages use the name the 1C developer wrote.
XML_VALUE_ELEMENTS: Final = {"debt": "Debt", "payable": "Payable", "overdueDebt": "OverdueDebt",
                             "creditLimit": "CreditLimit"}


# How each field is parsed on the slow path (a record with a problem), and checked.
_REQUIRED: Final = 1
_NON_NEGATIVE: Final = 2
_NON_ZERO: Final = 4
_Spec = tuple[str, Callable[[object], object], int]


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


def storable(raw: object, moment: datetime | None, bitrix_tz: tzinfo) -> datetime | None:
    """`moment` when it converts to UTC (the ledger) and to the site's zone (the blocks) within what a
    MySQL DATETIME holds; a ValueError naming `raw` otherwise.

    Python's offsets are under 24 hours, so a moment dated between 1001 and 9998 converts within
    1000-01-01..9999-12-31 to any zone: only those years pay for the conversion (once per payment).
    """
    if moment is None or 1000 < moment.year < 9999:
        return moment
    try:
        fits = min(moment.astimezone(UTC).year, moment.astimezone(bitrix_tz).year) >= 1000
    except OverflowError:
        fits = False
    if not fits:
        raise ValueError(
            f"{show(raw)} is out of range: syncd stores times from 1000-01-01 to 9999-12-31 (MySQL DATETIME) "
            f"in UTC and in bitrix.timezone {bitrix_tz}; 1C's empty date is 0001-01-01T00:00:00")
    return moment


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
        # Counterparty ids, payment ids and document (id, dueDate) keys are each unique on their own.
        self._cp_hashes = HashSpill()
        self._payment_hashes = HashSpill()
        self._document_hashes = HashSpill()
        tz, site_tz = source_tz, self.bitrix_tz
        self._payment_spec: tuple[_Spec, ...] = (
            ("id", parse_guid, _REQUIRED),
            ("date", lambda v: storable(v, parse_datetime(v, tz), site_tz), _REQUIRED),
            ("sum", parse_amount, _REQUIRED | _NON_ZERO),
            ("number", parse_text, 0),
            ("kind", parse_payment_kind, 0),
            ("purpose", parse_text, 0),
        )
        self._document_spec: tuple[_Spec, ...] = (
            ("id", parse_guid, _REQUIRED),
            ("kind", parse_document_kind, 0),
            ("number", parse_text, 0),
            ("date", parse_date, _REQUIRED),
            ("dueDate", parse_date, 0),
            ("amount", parse_amount, 0),
            ("outstanding", parse_amount, _REQUIRED | _NON_NEGATIVE),
        )

    def close(self) -> None:
        """Release the id hashes' temporary files; problems, tally and summary stay readable."""
        for spill in (self._cp_hashes, self._payment_hashes, self._document_hashes):
            spill.close()

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

    def _item_where(self, raw: RawCounterparty, kind: str, index: int, item: object) -> str:
        label = f"{kind} #{index} of {self._counterparty_label(raw)}"
        line = getattr(item, "sourceline", None)
        return f"line {line}, {label}" if line is not None else label

    # -- header and summary -------------------------------------------------------------------

    def header(self, fields: Fields, *, where: str | None = None) -> Header | None:
        """The export's header, or None (collecting mode) when it has a problem."""
        problems = len(self.problems) + self.more_problems
        version = self._field(fields, "formatVersion", parse_format_version, _REQUIRED, where, "header")
        export_id = self._field(fields, "exportId", parse_guid, _REQUIRED, where, "header")
        site_tz = self.bitrix_tz
        generated_at = self._field(fields, "generatedAt",
                                   lambda v: storable(v, parse_datetime(v, self.source_tz), site_tz),
                                   _REQUIRED, where, "header")
        mode = self._field(fields, "mode", parse_mode, 0, where, "header") or "full"
        # The window starts at midnight in generatedAt's zone, compared with payment times in the site's.
        zone = generated_at.tzinfo if isinstance(generated_at, datetime) else self.source_tz
        payments_from = self._field(fields, "paymentsFrom", lambda v: _window_start(v, zone, site_tz), 0, where,
                                    "header")
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
        for key in ("counterparties", "payments", "documents"):
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
        attrs, values = raw.attrs, raw.values
        try:
            cid = parse_guid(attrs.get("id"))
            debt = parse_amount(values.get("debt"))
            payable = parse_amount(values.get("payable"))
            overdue = parse_amount(values.get("overdueDebt"))
            limit = parse_amount(values.get("creditLimit"))
            if cid is None or debt is None or debt < 0 or (payable is not None and payable < 0) or (
                    overdue is not None and overdue < 0) or (limit is not None and limit < 0):
                raise ValueError
            currency = parse_currency(attrs.get("currency")) or "RUB"
            record: Counterparty | None = Counterparty(
                id=cid, debt=debt, payable=_ZERO if payable is None else payable,
                overdue_debt=_ZERO if overdue is None else overdue, credit_limit=limit,
                inn=parse_inn(attrs.get("inn")), kpp=parse_kpp(attrs.get("kpp")),
                name=parse_text(attrs.get("name")), currency=currency,
            )
        except ValueError:
            cid = self._counterparty_problems(raw)
            record = None
        if cid is not None:
            self._cp_hashes.add(hash(cid))
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
            where = self._item_where(raw, kind, index, items[index - 1])
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
        self._cp_hashes.add(hash(cid))
        # These bytes passed parse_guid when they were applied, so each id is a 36-character GUID and
        # its lower case is what parse_guid gives, at a fifth of the cost (1.2 M ids in an L export).
        if raw.payment_ids is not None and raw.document_keys is not None:
            paid = [hash(i) for i in raw.payment_ids]
            owed = [hash((i, parse_date(due))) for i, due in raw.document_keys]
        else:
            paid = [hash(_lower_guid(item.get("id"))) for item in raw.payments]
            owed = [hash((_lower_guid(item.get("id")), parse_date(item.get("dueDate")))) for item in raw.documents]
        self._payment_hashes.add_all(paid)
        self._document_hashes.add_all(owed)
        self.tally.payments += len(paid)
        self.tally.documents += len(owed)
        return Unchanged(cid, digest, len(paid), len(owed), ref)

    def _counterparty_problems(self, raw: RawCounterparty) -> str | None:
        """Slow path: report every bad field of the counterparty; return its id if that one is good."""
        where = self.counterparty_where(raw)
        cid = self._field(raw.attrs, "id", parse_guid, _REQUIRED, where, "Counterparty")
        for key, flags in (("debt", _REQUIRED), ("payable", 0), ("overdueDebt", 0), ("creditLimit", 0)):
            self._field(raw.values, key, parse_amount, flags | _NON_NEGATIVE, where, "Counterparty")
        for key, parse in (("currency", parse_currency), ("inn", parse_inn), ("kpp", parse_kpp),
                           ("name", parse_text)):
            self._field(raw.attrs, key, parse, 0, where, "Counterparty")
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
        day = self._field(item, "date", parse_date, 0, where, "LastPayment")
        amount = self._field(item, "sum", parse_amount, 0, where, "LastPayment")
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
        tz, site_tz, names = self.source_tz, self.bitrix_tz, self._names
        index = 0
        for index, item in enumerate(raw.payments, 1):
            try:
                get = item.get
                values = (get("id"), get("date"), get("sum"), get("number"), get("kind"), get("purpose"))
                if names(item) != len(PAYMENT_KEYS) - values.count(None):
                    self._unknown_keys(item, PAYMENT_KEYS, "Payment", self._item_where(raw, "payment", index, item))
                pid = parse_guid(values[0])
                when = parse_datetime(values[1], tz)
                amount = parse_amount(values[2])
                if pid is None or when is None or not amount:  # a zero sum is also an error
                    raise ValueError
                if not 1000 < when.year < 9999:  # see storable(): the rest converts anywhere
                    storable(values[1], when, site_tz)
                assert amount is not None
                payment = Payment(pid, when, amount, parse_text(values[3]), parse_payment_kind(values[4]),
                                  parse_text(values[5]))
            except (ValueError, AttributeError):
                ok = False
                good = self._fields(item, self._payment_spec, self._item_where(raw, "payment", index, item),
                                    "Payment")
                pid = good.get("id")  # type: ignore[assignment]
                if not isinstance(pid, str):
                    continue
            else:
                out.append(payment)
            if pid in seen:
                ok = False
                first = next(i for i, p in enumerate(raw.payments, 1) if _quiet(parse_guid, p.get("id")) == pid)
                self.problem(
                    f"payment id {pid} appears twice in this counterparty (first as payment #{first}"
                    f"{self._line_suffix(raw.payments[first - 1])}); payment ids must be unique in the file",
                    where=self._item_where(raw, "payment", index, item), field="id")
                continue
            seen.add(pid)
            add_hash(hash(pid))
        self._payment_hashes.add_all(hashes)
        self.tally.payments += index
        return out, ok

    def _documents(self, raw: RawCounterparty) -> tuple[list[Document], bool]:
        out: list[Document] = []
        ok = True
        seen: set[tuple[str, date | None]] = set()
        hashes: list[int] = []  # handed to the spill once per counterparty
        add_hash = hashes.append
        names = self._names
        index = 0
        for index, item in enumerate(raw.documents, 1):
            try:
                get = item.get
                values = (get("id"), get("kind"), get("number"), get("date"), get("dueDate"), get("amount"),
                          get("outstanding"))
                if names(item) != len(DOCUMENT_KEYS) - values.count(None):
                    self._unknown_keys(item, DOCUMENT_KEYS, "Document",
                                       self._item_where(raw, "document", index, item))
                did = parse_guid(values[0])
                day = parse_date(values[3])
                outstanding = parse_amount(values[6])
                if did is None or day is None or outstanding is None or outstanding < 0:
                    raise ValueError
                due = parse_date(values[4])
                document = Document(did, day, outstanding, parse_document_kind(values[1]), parse_text(values[2]),
                                    due, parse_amount(values[5]))
            except (ValueError, AttributeError):
                ok = False
                good = self._fields(item, self._document_spec,
                                    self._item_where(raw, "document", index, item), "Document")
                did = good.get("id")  # type: ignore[assignment]
                if not isinstance(did, str) or ("dueDate" in good and good["dueDate"] is None and
                                                item.get("dueDate") not in (None, "")):
                    continue
                due = good.get("dueDate")  # type: ignore[assignment]
            else:
                out.append(document)
            key = (did, due)
            if key in seen:
                ok = False
                self.problem(
                    f"document {did}{self._due_label(due)} appears twice in this counterparty; "
                    "a document may appear once per due date", where=self._item_where(raw, "document", index, item),
                    field="id")
                continue
            seen.add(key)
            add_hash(hash(key))
        self._document_hashes.add_all(hashes)
        self.tally.documents += index
        return out, ok

    @staticmethod
    def _due_label(due: object) -> str:
        return f" with due date {due}" if due is not None else " without a due date"

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
        suspects = (self._cp_hashes.colliding(), self._payment_hashes.colliding(),
                    self._document_hashes.colliding())
        if any(suspects):
            self._report_duplicates(rescan(), *suspects)

    def _report_duplicates(self, records: Iterator[RawCounterparty], counterparties: set[int],
                           payments: set[int], documents: set[int]) -> None:
        places: dict[tuple[str, object], list[str]] = {}

        def note(kind: str, key: object, where: Callable[[], str]) -> None:
            found = places.setdefault((kind, key), [])
            found.append(where())

        for raw in records:
            cid = _quiet(parse_guid, raw.attrs.get("id"))
            if cid is not None and hash(cid) in counterparties:
                note("counterparty", cid, lambda raw=raw: self.counterparty_where(raw))  # type: ignore[misc]
            if payments:
                for index, item in enumerate(raw.payments, 1):
                    pid = _quiet(parse_guid, item.get("id")) if hasattr(item, "get") else None
                    if pid is not None and hash(pid) in payments:
                        note("payment", pid, lambda raw=raw, i=index, it=item:  # type: ignore[misc]
                             self._item_where(raw, "payment", i, it))
            if documents:
                for index, item in enumerate(raw.documents, 1):
                    did = _quiet(parse_guid, item.get("id")) if hasattr(item, "get") else None
                    if did is None:
                        continue
                    line_key = (did, _quiet(parse_date, item.get("dueDate")))
                    if hash(line_key) in documents:
                        note("document", line_key, lambda raw=raw, i=index, it=item:  # type: ignore[misc]
                             self._item_where(raw, "document", i, it))
        for (kind, key), where in places.items():
            if len(where) < 2:
                continue  # two different ids with one hash: not a duplicate
            listed = "; ".join(where[:5]) + ("; …" if len(where) > 5 else "")
            if kind == "document":
                did, due = cast(tuple[str, object], key)
                message = (f"document {did}{self._due_label(due)} is listed {len(where)} times ({listed}); "
                           "a document may appear once per due date")
            elif kind == "payment":
                message = (f"payment id {key} is listed {len(where)} times ({listed}); "
                           "payment ids must be unique in the file")
            else:
                message = (f"counterparty id {key} is listed {len(where)} times ({listed}); "
                           "each counterparty must appear once in the file")
            self.problem(message, where=where[1], field="id")


def _window_start(value: object, zone: tzinfo | None, bitrix_tz: tzinfo) -> date | None:
    """paymentsFrom: a date whose midnight (in generatedAt's zone) converts to the site's zone."""
    day = parse_date(value)
    if day is not None:
        storable(value, datetime.combine(day, time(0), zone), bitrix_tz)
    return day


def _lower_guid(value: object) -> object:
    return value.lower() if type(value) is str else parse_guid(value)


def _quiet(parse: Callable[[object], object], value: object) -> object:
    try:
        return parse(value)
    except ValueError:
        return None


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
