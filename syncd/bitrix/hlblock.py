"""The writer: applies one export's records to the three HL-block data tables.

It runs inside a transaction its caller owns, so a file is applied whole or not at all.
Counterparties are handled in batches: for each batch the existing rows are read once, compared
with the file, and only the differences are written with multi-row statements. That keeps the
statement count at a few per batch and leaves unchanged payment and document rows untouched.

Time never goes backwards: a counterparty confirmed by a newer export keeps its rows. "Newer" is
decided in UTC, on the as-of stamp syncd keeps per counterparty (syncd_counterparty_state.as_of_utc;
UF_UPDATED_AT, naive in the site's zone, repeats a local hour every autumn); for a row without one,
UF_UPDATED_AT read in bitrix.timezone, the earlier reading when ambiguous. A stamp later than now +
max_clock_skew is not trusted (a typo or a hand edit must not freeze a row), and an approved export
(override) is newer than everything. Every counterparty the file lists gets this export's stamp; its
balance row's UF_UPDATED_AT follows in one statement at the end (Writer._confirm_rows), so the apply
holds no lock on the balance rows of unchanged counterparties while it runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any, Final, TypeVar, cast

from sqlalchemy import Connection, Table, func, or_, select, update

from syncd.bitrix.asof import AsOf, utc_of_local
from syncd.bitrix.blocks import CHUNK, ApplyCounts, ApplyOptions, BlockCounts, Blocks, HeldByGuard, chunks
from syncd.bitrix.digests import (
    DigestIndex,
    DigestState,
    Stored,
    digest_index,
    file_digest_salt,
    record_digest,
    record_digest_salt,
)
from syncd.bitrix.rows import Fills, RowBuilder, column_of, money, payments_from, site_time
from syncd.bitrix.sql import Row, Sql
from syncd.bitrix.users import Linker
from syncd.contract.fields import COUNTERPARTY, DOCUMENT, PAYMENT
from syncd.contract.records import Counterparty, Header, Unchanged
from syncd.errors import ExportError
from syncd.ledger import counterparty_state

# What the rest of syncd imports from here.
__all__ = ["CHUNK", "ApplyCounts", "ApplyOptions", "BlockCounts", "Blocks", "DigestIndex", "HeldByGuard",
           "Writer", "apply_export", "chunks", "digest_index", "file_digest_salt"]

T = TypeVar("T")

BATCH = 1000  # counterparties per batch: ~10k payments, IN-lists well under max_allowed_packet
_NEW_ID = 1 << 62  # ranks rows not inserted yet after every existing row ID


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, float) and isinstance(new, float):
        return round(old, 2) == round(new, 2)
    return bool(old == new)


# What a counterparty the site knows and a full export leaves out no longer owes: these are zeroed
# (on_missing = zero), and the guard counts the counterparties that had any of them.
_DEBTS: Final = tuple(column_of(COUNTERPARTY, k) for k in ("debt", "overdueDebt", "payable"))


class Writer:
    """Applies one export inside the caller's transaction."""

    def __init__(
        self,
        conn: Connection,
        blocks: Blocks,
        header: Header,
        linker: Linker,
        options: ApplyOptions,
        progress: Callable[[int], None] | None = None,
        name: str = "export",
    ):
        self.name = name
        self.sql = Sql(conn, name)
        self.b = blocks
        self.header = header
        self.linker = linker
        self.opt = options
        self.progress = progress
        self.counts = ApplyCounts()
        self.as_of = site_time(header.generated_at, options.bitrix_tz)
        self.as_of_utc = header.generated_at.astimezone(UTC).replace(tzinfo=None)
        self.payments_from = payments_from(header, options.bitrix_tz)
        now = datetime.now(UTC).replace(tzinfo=None)
        self.checked_at = now.replace(microsecond=0)
        self.trust_after = now - options.trust_digest_for
        self._as_of = AsOf(self.as_of_utc, now + options.max_clock_skew, options.override)
        self._newer = self._as_of.newer
        self._confirming = False  # some balance row waits for _confirm_rows
        self._digests = DigestState(self.sql, self.as_of_utc, self.checked_at)
        self._record_salt = record_digest_salt(options.bitrix_tz, self.payments_from)
        # The blocks' rows. New ones are SQL text on MySQL and MariaDB, tuples on SQLite (the demo); the
        # payments' date and sum are converted by _apply_payments, which ranks them too.
        tz, quote = options.bitrix_tz, self.sql.quote
        self._payment_rows = RowBuilder(PAYMENT, tz, quote, given=("date", "sum"))
        self._document_rows = RowBuilder(DOCUMENT, tz, quote)
        self._balance_rows = RowBuilder(COUNTERPARTY, tz, quote)
        # Per counterparty of the current batch: its site user, and (date, rank, sum) of its newest
        # incoming payment in the file.
        self._users: dict[str, int | None] = {}
        self._newest: dict[str, tuple[datetime, int, float]] = {}

    # ------------------------------------------------------------------ helpers

    @property
    def conn(self) -> Connection:
        """The connection, once the statements handed to the sender have run (statements keep their order)."""
        return self.sql.conn

    def _fills(self, cp: Counterparty, last: tuple[date | None, float | None] = (None, None)) -> Fills:
        return Fills(cp.id, self._users[cp.id], cp.currency, self.as_of, *last)

    def _new_rows(self, rows: RowBuilder, fills: Fills) -> Callable[..., Any]:
        """How new rows are built: SQL text on MySQL, tuples elsewhere (see Sql.insert_rows)."""
        return rows.sql(fills) if self.sql.rendered else rows.values(fills)

    @staticmethod
    def _diff_columns(rows: RowBuilder) -> list[str]:
        """What the diff reads back: all but the as-of stamp, which it ignores (and whose DATETIME is
        one of the dearer values for PyMySQL to convert)."""
        return ["ID", *(c for c in rows.columns if c != rows.as_of_column)]

    def _compare(self, counts: BlockCounts, existing: Row, new: Row, updates: list[Row], ignore: str | None) -> bool:
        """Queue the update if a value differs (`ignore` aside); True when the row is unchanged."""
        changed = any(not _same(existing.get(k), v) for k, v in new.items() if k != ignore)
        if changed:
            updates.append({"ID": existing["ID"], **new})
            counts.updated += 1
        else:
            counts.unchanged += 1
        return not changed

    # ------------------------------------------------------------------ apply

    def apply(self, counterparties: Iterable[Counterparty | Unchanged]) -> ApplyCounts:
        try:
            counts = self._apply(counterparties)
        except BaseException:
            # The caller rolls back on this connection, which the sender may still be using.
            self.sql.close(failing=True)
            raise
        self.sql.close()
        return counts

    def _apply(self, counterparties: Iterable[Counterparty | Unchanged]) -> ApplyCounts:
        known_before = self.conn.execute(select(func.count()).select_from(self.b.balance)).scalar_one()
        # A block that was empty when the file started holds only rows this file wrote, and the file's
        # counterparties and payments are each listed once (the reader checks; a repeat that meets its
        # twin in the database is a unique-key error, reported as the file's fault by Sql): so
        # looking them up cannot find anything. On a first load that is most of the SELECTs.
        self._balance_empty = not known_before
        self._payments_empty = self._empty(self.b.payments)
        self._documents_empty = self._empty(self.b.documents)
        for batch in _batches(counterparties, BATCH):
            self._apply_batch(batch)
            if self.progress:
                self.progress(len(batch))
        if self.header.mode == "full":
            self._apply_missing(int(known_before))
        self._confirm_rows()
        return self.counts

    def _apply_batch(self, batch: list[Counterparty | Unchanged]) -> None:
        current: list[Counterparty] = []
        confirm: list[str] = []
        for cp in batch:
            if type(cp) is Unchanged:
                # What the index read at the start: no lookup per batch for the unchanged majority.
                _row_id, stamp = cast(tuple[int, datetime | None], cp.ref)
                if self._newer(stamp):
                    self._skip_newer(1)
                    continue
                self._count_unchanged(cp.payments, cp.documents)
                confirm.append(cp.id)
            else:
                current.append(cp)  # type: ignore[arg-type]
        self.counts.counterparties += len(batch)
        changed, stamps, digests = self._changed(current, confirm) if current else ([], {}, {})
        self._confirm(confirm)
        if not changed:
            return
        bal = self.b.balance
        existing = {
            r["UF_CONTRACTOR_XML_ID"]: r
            for r in self.sql.select_in(bal, "UF_CONTRACTOR_XML_ID", [cp.id for cp in changed if cp.id in stamps])
        }
        self._apply_payments(changed)
        self._apply_documents(changed)
        self._apply_balance(changed, existing)
        self._digests.store([(cp.id, digests[cp.id]) for cp in changed])

    def _changed(self, current: list[Counterparty],
                 confirm: list[str]) -> tuple[list[Counterparty], dict[str, Row], dict[str, str]]:
        """The counterparties whose rows must be compared and written, the balance rows' stamps, and the
        digests; those not newer and unchanged since syncd last applied them are added to `confirm`."""
        # Only what decides the path; whole rows are read by _apply_batch for the counterparties that changed.
        path_cols = ("ID", "UF_CONTRACTOR_XML_ID", "UF_UPDATED_AT")
        ids = [cp.id for cp in current]
        bal = self.b.balance
        rows = [] if self._balance_empty else self.sql.select_in(bal, "UF_CONTRACTOR_XML_ID", ids, columns=path_cols)
        stamps = {r["UF_CONTRACTOR_XML_ID"]: r for r in rows}
        # Stored digests and stamps only count for counterparties with a balance row (see below).
        stored = self._digests.stored(list(stamps))
        newer = {g for g, r in stamps.items() if self._newer(self._stamp(r, stored.get(g)))}
        if newer:
            self._skip_newer(len(newer))
            current = [cp for cp in current if cp.id not in newer]
        # One lookup per counterparty: the digest and all three blocks need its user.
        self._users = {cp.id: self.linker.user_for(cp.id, cp.inn, cp.kpp) for cp in current}
        digests = {cp.id: cp.digest or record_digest(self._record_salt, self._users[cp.id], cp) for cp in current}
        changed: list[Counterparty] = []
        for cp in current:
            old = stored.get(cp.id)
            if cp.id in stamps and old is not None and old[0] == digests[cp.id] and old[1] >= self.trust_after:
                # The file says exactly what syncd last wrote for it: nothing to read back or compare.
                self._count_unchanged(len(cp.payments), len(cp.documents))
                confirm.append(cp.id)
            else:
                changed.append(cp)
        return changed, stamps, digests

    def _stamp(self, row: Row, stored: Stored | None) -> datetime | None:
        """A counterparty's as-of time in UTC: syncd's own, else its balance row's read in the site's zone."""
        if stored is not None and stored[2] is not None:
            return stored[2]
        return utc_of_local(row["UF_UPDATED_AT"], self.opt.bitrix_tz)

    def _empty(self, table: Table) -> bool:
        return self.conn.execute(select(table.c.ID).limit(1)).first() is None

    def _skip_newer(self, count: int) -> None:
        # Confirmed by a newer export than this one: left as they are.
        self.counts.skipped_newer += count
        self.counts.balance.unchanged += count

    def _count_unchanged(self, payments: int, documents: int) -> None:
        self.counts.balance.unchanged += 1
        self.counts.payments.unchanged += payments
        self.counts.documents.unchanged += documents

    def _confirm(self, guids: list[str]) -> None:
        """The values are the same, but the counterparty is now confirmed as of this export: its stamp in
        syncd's own table now, its balance row's UF_UPDATED_AT (the date the site shows) at the end."""
        self._confirming = self._confirming or bool(guids)
        self._digests.confirm(guids)

    def _confirm_rows(self) -> None:
        """UF_UPDATED_AT = this export's as-of time on every balance row it confirmed, in one statement
        right before the commit: the rows are locked only from here to the commit, so an admin's edit of a
        balance row never waits out a long apply (or a download, with apply_while_downloading)."""
        if not self._confirming:
            return  # a first load, or only changed rows: nothing to confirm
        t, st = self.b.balance, counterparty_state
        stmt = (update(t)
                .where(t.c.UF_CONTRACTOR_XML_ID == st.c.guid, st.c.as_of_utc == self.as_of_utc,
                       or_(t.c.UF_UPDATED_AT.is_(None), t.c.UF_UPDATED_AT != self.as_of))
                .values(UF_UPDATED_AT=self.as_of))
        self.conn.execute(stmt)

    # ------------------------------------------------------------------ the three blocks

    def _stored_payments(self, cps: list[Counterparty], file_ids: list[str]) -> tuple[dict[str, Row], list[int]]:
        """The stored rows of the file's payments by id, and the IDs of the window's rows the file no longer lists."""
        if self._payments_empty:
            return {}, []
        t = self.b.payments
        cols = self._diff_columns(self._payment_rows)
        stale: list[int] = []
        existing: dict[str, Row] = {}
        rest = file_ids
        if self.payments_from is not None:
            # One read serves the diff and the cancelled-payment check: the window's rows of these
            # counterparties. A payment in the window that the file no longer lists was cancelled.
            listed = set(file_ids)
            in_window = self.sql.select_in(
                t, "UF_CONTRACTOR_XML_ID", [cp.id for cp in cps], t.c.UF_DATE >= self.payments_from, columns=cols
            )
            existing = {r["UF_PAYMENT_XML_ID"]: r for r in in_window}
            stale = [r["ID"] for r in in_window if r["UF_PAYMENT_XML_ID"] not in listed]
            # Listed but not found there: dated before the window, or stored under another counterparty.
            rest = [i for i in file_ids if i not in existing]
        existing.update(
            (r["UF_PAYMENT_XML_ID"], r) for r in self.sql.select_in(t, "UF_PAYMENT_XML_ID", rest, columns=cols)
        )
        return existing, stale

    def _apply_payments(self, cps: list[Counterparty]) -> None:
        t, rows = self.b.payments, self._payment_rows
        counts = self.counts.payments
        self._refuse_repeated_ids(cps)
        existing, stale = self._stored_payments(cps, [p.id for cp in cps for p in cp.payments])
        inserts: list[Any] = []
        updates: list[Row] = []
        newest: dict[str, tuple[datetime, int, float]] = {}
        bitrix_tz, find, ignore = self.opt.bitrix_tz, existing.get, rows.as_of_column
        for cp in cps:
            fills = self._fills(cp)
            new_row = self._new_rows(rows, fills)
            old_row: Callable[..., tuple[Any, ...]] | None = None
            best: tuple[datetime, int, float] | None = None
            for p in cp.payments:
                when = site_time(p.date, bitrix_tz)
                amount = float(p.sum)  # the sign of the Decimal: a cent is far from float's smallest
                old = find(p.id)
                if old is None:
                    inserts.append(new_row(p, when, amount))
                    # Rank as the payments block will: by date, then row ID; rows inserted now get IDs
                    # above every existing one, in this order.
                    rank_id = _NEW_ID + len(inserts)
                else:
                    old_row = old_row or rows.values(fills)
                    self._compare(counts, old, rows.mapping(old_row(p, when, amount)), updates, ignore)
                    rank_id = int(old["ID"])
                if amount > 0 and (best is None or (when, rank_id) > best[:2]):
                    best = (when, rank_id, amount)
            if best is not None:
                newest[cp.id] = best
        self._newest = newest
        counts.inserted += len(inserts)
        self.sql.delete_ids(t, stale)
        counts.deleted += len(stale)
        self.sql.insert_rows(t, rows.columns, inserts)
        self.sql.update_by_id(t, updates)

    def _refuse_repeated_ids(self, cps: list[Counterparty]) -> None:
        """A payment listed under two counterparties of one batch would hit the unique index as a database error.

        The reader finds repeated ids across the whole file once it has read it; this catches the ones
        that meet within one batch first, so they are reported as what they are: a bad file.
        """
        owner: dict[str, str] = {}
        for cp in cps:
            for p in cp.payments:
                first = owner.setdefault(p.id, cp.id)
                if first != cp.id:
                    raise ExportError(
                        self.name, f"payment id {p.id} appears twice: under counterparty {first} and under {cp.id}",
                        where=f"counterparty {cp.id}", field="Payment id",
                    )

    def _apply_documents(self, cps: list[Counterparty]) -> None:
        t, rows = self.b.documents, self._document_rows
        counts = self.counts.documents
        existing: dict[tuple[str, str, date | None], Row] = {}
        extra: list[int] = []
        stored = [] if self._documents_empty else self.sql.select_in(
            t, "UF_CONTRACTOR_XML_ID", [cp.id for cp in cps], columns=self._diff_columns(rows))
        for r in stored:
            key = (r["UF_CONTRACTOR_XML_ID"], r["UF_DOCUMENT_XML_ID"], r["UF_DUE_DATE"])
            if key in existing:
                extra.append(r["ID"])  # a duplicate row (made by hand?): the file's list is the truth
            else:
                existing[key] = r
        inserts: list[Any] = []
        updates: list[Row] = []
        for cp in cps:
            fills = self._fills(cp)
            new_row = self._new_rows(rows, fills)
            old_row: Callable[..., tuple[Any, ...]] | None = None
            for d in cp.documents:
                old = existing.pop((cp.id, d.id, d.due_date), None)
                if old is None:
                    inserts.append(new_row(d))
                    counts.inserted += 1
                else:
                    old_row = old_row or rows.values(fills)
                    self._compare(counts, old, rows.mapping(old_row(d)), updates, rows.as_of_column)
        gone = [r["ID"] for r in existing.values()] + extra
        self.sql.delete_ids(t, gone)
        counts.deleted += len(gone)
        self.sql.insert_rows(t, rows.columns, inserts)
        self.sql.update_by_id(t, updates)

    def _last_payments(self, cps: list[Counterparty]) -> dict[str, tuple[date, float]]:
        """Newest incoming payment per counterparty, as the payments block holds them after this batch.

        With a payments window the file lists every payment of the counterparty from that day on, and
        the rest are older: so when the file's newest incoming payment is inside the window, it is the
        answer, without reading anything back. So it is when the block was empty before this file: all
        its rows are the file's. The others are asked of the database (which also means waiting for
        the INSERTs handed to the sender).
        """
        best: dict[str, tuple[date, float]] = {}
        need: list[str] = []
        only_file = self._payments_empty
        for cp in cps:
            if cp.last_payment is not None:
                continue
            mine = self._newest.get(cp.id)
            if mine is not None and (only_file or (self.payments_from is not None and mine[0] >= self.payments_from)):
                best[cp.id] = (mine[0].date(), mine[2])
            elif not only_file:
                need.append(cp.id)
        t = self.b.payments
        found: dict[str, tuple[datetime, int, float]] = {}
        for chunk in chunks(need):
            q = select(t.c.UF_CONTRACTOR_XML_ID, t.c.UF_DATE, t.c.ID, t.c.UF_SUM).where(
                t.c.UF_CONTRACTOR_XML_ID.in_(chunk), t.c.UF_SUM > 0, t.c.UF_DATE.is_not(None)
            )
            for guid, when, row_id, amount in self.conn.execute(q):
                if guid not in found or (when, row_id) > found[guid][:2]:
                    found[guid] = (when, row_id, amount)
        best.update((g, (v[0].date(), v[2])) for g, v in found.items())
        return best

    def _apply_balance(self, cps: list[Counterparty], existing: dict[str, Row]) -> None:
        t, rows = self.b.balance, self._balance_rows
        counts = self.counts.balance
        last = self._last_payments(cps)
        inserts: list[Any] = []
        updates: list[Row] = []
        for cp in cps:
            lp: tuple[date | None, float | None]
            if cp.last_payment is not None:
                lp = (cp.last_payment.date, money(cp.last_payment.sum))
            else:
                lp = last.get(cp.id, (None, None))
            fills = self._fills(cp, lp)
            old = existing.get(cp.id)
            if old is None:
                inserts.append(self._new_rows(rows, fills)(cp))
                counts.inserted += 1
            elif self._compare(counts, old, rows.mapping(rows.values(fills)(cp)), updates, rows.as_of_column):
                self._confirming = True  # at the end (_confirm_rows): its stamp comes with the digest
        self.sql.insert_rows(t, rows.columns, inserts)
        self.sql.update_by_id(t, updates)

    # ------------------------------------------------------------------ counterparties the file leaves out

    def _missing(self) -> list[Row]:
        """Balance rows of counterparties this export does not list, unless a newer export confirmed them."""
        t, st = self.b.balance, counterparty_state
        # Every counterparty the file lists has this export's stamp now, or a newer one (skipped).
        q = (select(t.c.ID, t.c.UF_CONTRACTOR_XML_ID, *(t.c[c] for c in _DEBTS), t.c.UF_UPDATED_AT, st.c.as_of_utc)
             .select_from(t.outerjoin(st, st.c.guid == t.c.UF_CONTRACTOR_XML_ID))
             .where(or_(st.c.as_of_utc.is_(None), st.c.as_of_utc != self.as_of_utc)))
        missing = [dict(r._mapping) for r in self.conn.execute(q)]
        return [r for r in missing if not self._newer(
            r["as_of_utc"] if r["as_of_utc"] is not None else utc_of_local(r["UF_UPDATED_AT"], self.opt.bitrix_tz))]

    def _guard(self, with_debt: int, known_before: int) -> None:
        if not self.opt.guard or known_before == 0:
            return
        if self.counts.counterparties == 0:
            raise HeldByGuard(
                f"the export lists no counterparty while the site knows {known_before}: "
                "an empty export is usually a failed query in 1C"
            )
        ratio = with_debt / known_before
        if self.opt.on_missing != "keep" and ratio > self.opt.max_missing_ratio:
            raise HeldByGuard(
                f"the export would take the debts off {with_debt} of {known_before} counterparties "
                f"({ratio:.0%}, more than max_missing_ratio {self.opt.max_missing_ratio:.0%})"
            )

    def _apply_missing(self, known_before: int) -> None:
        """Counterparties the site knows but this full export does not list no longer owe anything."""
        missing = self._missing()
        if self.opt.on_missing == "keep" and self.counts.counterparties > 0:
            return
        with_debt = [r for r in missing if any(r[k] for k in _DEBTS)]
        self._guard(len(with_debt), known_before)
        if self.opt.on_missing == "keep" or not missing:
            return
        t, st, docs = self.b.balance, counterparty_state, self.b.documents
        guids = [r["UF_CONTRACTOR_XML_ID"] for r in missing]
        if self.opt.on_missing == "delete":
            for chunk in chunks(guids):
                self.conn.execute(st.delete().where(st.c.guid.in_(chunk)))
        else:
            self._digests.forget(guids)
        for chunk in chunks(guids):
            gone = self.conn.execute(docs.delete().where(docs.c.UF_CONTRACTOR_XML_ID.in_(chunk))).rowcount
            self.counts.documents.deleted += gone
        ids = [r["ID"] for r in missing]
        if self.opt.on_missing == "delete":
            self.sql.delete_ids(t, ids)
            self.counts.balance.deleted += len(ids)
            return
        zero_ids = [r["ID"] for r in with_debt]
        for chunk in chunks(zero_ids):
            self.conn.execute(t.update().where(t.c.ID.in_(chunk)).values(
                {**dict.fromkeys(_DEBTS, 0.0), "UF_UPDATED_AT": self.as_of}))
        self.counts.balance.updated += len(zero_ids)
        # Already zero: only confirmed as of this export.
        zeroed = set(zero_ids)
        quiet = [i for i in ids if i not in zeroed]
        for chunk in chunks(quiet):
            self.conn.execute(t.update().where(t.c.ID.in_(chunk)).values(UF_UPDATED_AT=self.as_of))
        self.counts.balance.unchanged += len(quiet)


def apply_export(
    conn: Connection,
    blocks: Blocks,
    header: Header,
    counterparties: Iterable[Counterparty | Unchanged],
    linker: Linker,
    options: ApplyOptions,
    progress: Callable[[int], None] | None = None,
    name: str = "export",
) -> ApplyCounts:
    """Apply one export in the caller's transaction. Raises HeldByGuard or ExportError (caller rolls back)."""
    return Writer(conn, blocks, header, linker, options, progress, name).apply(counterparties)
