"""What syncd last applied per counterparty, as digests: the index the reader skips unchanged
counterparties by (DigestIndex), and the writer's reads and writes of syncd_counterparty_state.

Two digests: a counterparty read with an index gets the digest of its bytes in the file
(DigestIndex.digest, salted by file_digest_salt); one read without it gets the digest of its parsed
record (record_digest). Both are stored the same way; a counterparty whose digest matches the stored
one is confirmed without reading its rows back.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy import Connection, select
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.sql.dml import Insert

from syncd import __version__
from syncd.bitrix.asof import EPOCH, local_seconds_to_utc, seconds
from syncd.bitrix.blocks import ApplyOptions, Blocks, chunks
from syncd.bitrix.rows import payments_from
from syncd.bitrix.sql import Sql
from syncd.bitrix.users import Linker
from syncd.contract.records import Counterparty, Header
from syncd.ledger import counterparty_state

_HASH_PIECE = 2047  # hashlib's GIL_MINSIZE is 2048
_NO_STAMP = -(1 << 63)
Stored = tuple[str, datetime, datetime | None]  # digest, checked_at, as_of_utc


def file_digest_salt(options: ApplyOptions, window_start: datetime | None, source_tz: tzinfo | None) -> bytes:
    """The salt of the digests of counterparties' bytes in the file (DigestIndex)."""
    # Whatever changes how a counterparty's rows come out, or whether its bytes are valid, belongs in
    # its digest: the site's zone, the payments window, the zone of the file's times, syncd's rules.
    return repr((str(options.bitrix_tz), window_start, str(source_tz), __version__)).encode()


def record_digest_salt(bitrix_tz: tzinfo, window_start: datetime | None) -> str:
    """The salt of the digests of parsed records (record_digest)."""
    # Whatever changes how a counterparty's rows come out belongs in its digest.
    return repr((bitrix_tz, window_start))


def record_digest(salt: str, user: int | None, cp: Counterparty) -> str:
    # Records read without a DigestIndex (the digest of the file's bytes) get one of their repr, which
    # is exact (Decimals, aware datetimes) and ~50 µs a counterparty: cheaper than reading rows back.
    return hashlib.blake2b(repr((salt, user, cp)).encode(), digest_size=16).hexdigest()


class DigestIndex:
    """The digests of what syncd last applied, so the reader can tell an unchanged counterparty before
    parsing it (syncd.contract.checks.KnownDigests), and the writer can confirm it without reading anything.

    A digest covers the counterparty's bytes in the file, its site user and the salt (see
    file_digest_salt); the writer stores it per counterparty in syncd_counterparty_state. The index holds
    every digest that is still trusted and whose balance row exists, with that row's ID and UF_UPDATED_AT,
    in four sorted arrays: 32 bytes per counterparty.
    """

    def __init__(self, salt: bytes, linker: Linker, rows: Iterable[tuple[str, int, int | None]]) -> None:
        """`rows`: (digest, balance row ID, the counterparty's as-of time in UTC as seconds since 1970)."""
        self._salt = salt
        self._user_for = linker.user_for
        hi, lo, ids, stamps = array("Q"), array("Q"), array("q"), array("q")
        for digest, row_id, stamp in rows:
            hi.append(int(digest[:16], 16))
            lo.append(int(digest[16:32], 16))
            ids.append(row_id)
            stamps.append(_NO_STAMP if stamp is None else stamp)
        order = sorted(range(len(hi)), key=hi.__getitem__)
        self._hi = array("Q", (hi[i] for i in order))
        self._lo = array("Q", (lo[i] for i in order))
        self._ids = array("q", (ids[i] for i in order))
        self._stamps = array("q", (stamps[i] for i in order))

    def digest(self, guid: str, inn: str | None, kpp: str | None, content: bytes) -> str:
        h = hashlib.blake2b(self._salt, digest_size=16)
        h.update(f"{guid}|{self._user_for(guid, inn, kpp)}|".encode())
        # In pieces under 2 KiB: hashlib lets go of the GIL for larger ones, and taking it back from
        # the writer's threads costs more than the hashing itself.
        view = memoryview(content)
        for i in range(0, len(view), _HASH_PIECE):
            h.update(view[i : i + _HASH_PIECE])
        return h.hexdigest()

    def find(self, digest: str) -> tuple[int, datetime | None] | None:
        """(balance row ID, its as-of time in UTC) of the counterparty last applied with this digest."""
        hi, lo = int(digest[:16], 16), int(digest[16:32], 16)
        keys = self._hi
        i = bisect.bisect_left(keys, hi)
        while i < len(keys) and keys[i] == hi:
            if self._lo[i] == lo:
                stamp = self._stamps[i]
                return self._ids[i], None if stamp == _NO_STAMP else EPOCH + timedelta(seconds=stamp)
            i += 1
        return None


def digest_index(conn: Connection, blocks: Blocks, header: Header, linker: Linker, options: ApplyOptions,
                 source_tz: tzinfo) -> DigestIndex:
    """The index for applying `header`'s export in the caller's transaction (the writer reads the same snapshot)."""
    st, bal = counterparty_state, blocks.balance
    trust_after = datetime.now(UTC).replace(tzinfo=None) - options.trust_digest_for
    # Stamps as seconds from the server: PyMySQL's datetime per row was a third of the index's time,
    # and the index is built before the reader can start. UTC: syncd's own stamp, else the row's.
    q = (
        select(st.c.digest, bal.c.ID, seconds(conn, st.c.as_of_utc), seconds(conn, bal.c.UF_UPDATED_AT))
        .join(bal, bal.c.UF_CONTRACTOR_XML_ID == st.c.guid)
        .where(st.c.checked_at >= trust_after)
    )
    salt = file_digest_salt(options, payments_from(header, options.bitrix_tz), source_tz)
    tz = options.bitrix_tz
    return DigestIndex(salt, linker, ((d, i, local_seconds_to_utc(local, tz) if utc is None else utc)
                                      for d, i, utc, local in conn.execute(q)))


class DigestState:
    """The writer's reads and writes of syncd_counterparty_state: digests, checked_at, as-of stamps."""

    def __init__(self, sql: Sql, as_of_utc: datetime, checked_at: datetime) -> None:
        self._sql = sql
        self.as_of_utc = as_of_utc
        self.checked_at = checked_at
        self._upsert: Insert | None = None

    def stored(self, guids: Sequence[str]) -> dict[str, Stored]:
        """(digest, checked_at, as_of_utc) per counterparty that has them."""
        st = counterparty_state
        found: dict[str, Stored] = {}
        for chunk in chunks(guids):
            q = select(st.c.guid, st.c.digest, st.c.checked_at, st.c.as_of_utc).where(st.c.guid.in_(chunk))
            found.update((g, (d, c, a)) for g, d, c, a in self._sql.conn.execute(q))
        return found

    def store(self, pairs: Sequence[tuple[str, str]], checked_at: datetime | None = None) -> None:
        """Digest, checked_at and this export's stamp per counterparty (upserted)."""
        if not pairs:
            return
        checked = checked_at or self.checked_at
        rows = [{"guid": g, "digest": d, "checked_at": checked, "as_of_utc": self.as_of_utc} for g, d in pairs]
        stmt = self._upsert_statement()
        for chunk in chunks(rows):
            self._sql.execute_later(stmt, list(chunk))  # nothing to wait for: no result

    def _upsert_statement(self) -> Insert:
        if self._upsert is None:
            st = counterparty_state
            if self._sql.sqlite:
                ins = sqlite.insert(st)
                self._upsert = ins.on_conflict_do_update(index_elements=["guid"], set_={
                    "digest": ins.excluded.digest, "checked_at": ins.excluded.checked_at,
                    "as_of_utc": ins.excluded.as_of_utc})
            else:
                mins = mysql.insert(st)
                self._upsert = mins.on_duplicate_key_update(
                    digest=mins.inserted.digest, checked_at=mins.inserted.checked_at,
                    as_of_utc=mins.inserted.as_of_utc)
        return self._upsert

    def forget(self, guids: Sequence[str]) -> None:
        """Rows changed outside the digest's knowledge (zeroed as missing): compare them next time. Their
        stamp stays, as of this export."""
        self.store([(g, "") for g in guids], checked_at=EPOCH)

    def confirm(self, guids: Sequence[str]) -> None:
        """The counterparties' stamp in syncd's own table: as of this export."""
        st = counterparty_state
        for chunk in chunks(guids):
            self._sql.execute_later(st.update().where(st.c.guid.in_(chunk)).values(as_of_utc=self.as_of_utc))
