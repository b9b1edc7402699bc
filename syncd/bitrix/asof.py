"""As-of times: which export's data a counterparty's rows show, and when another export is newer.

A balance row's UF_UPDATED_AT is what the site shows: naive, in bitrix.timezone. Compared there, an
export written 30 minutes after another across the autumn DST change can look older, so syncd keeps
its own stamp per counterparty in UTC (syncd_counterparty_state.as_of_utc) and decides "newer" on it.
Rows without one (written before migration 0004, or by hand) fall back to UF_UPDATED_AT read in the
site's zone. A stamp later than now + max_clock_skew is not trusted: a typo in 1C's year or a date
set by hand must not freeze a row for ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Connection, Integer, func, literal_column
from sqlalchemy import cast as sql_cast

EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class AsOf:
    """One export's as-of time (naive UTC) and the rule that says whether a stored stamp is newer."""

    utc: datetime
    trusted_until: datetime  # now + max_clock_skew
    override: bool = False  # approved by an admin: newer than everything

    def newer(self, stamp: datetime | None) -> bool:
        return stamp is not None and self.utc < stamp <= self.trusted_until and not self.override


def utc_of_local(moment: datetime | None, bitrix_tz: tzinfo) -> datetime | None:
    """A naive local time of the site as naive UTC; in the autumn's repeated hour the earlier of the two
    readings, so that a row is held "newer" only when it surely is. None when it cannot be converted."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=bitrix_tz, fold=0).astimezone(UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):
        return None


def local_seconds_to_utc(seconds: int | None, bitrix_tz: tzinfo) -> int | None:
    """A stored UF_UPDATED_AT as seconds since 1970 (naive, the site's zone) as UTC seconds."""
    if seconds is None:
        return None
    moment = utc_of_local(EPOCH + timedelta(seconds=seconds), bitrix_tz)
    return None if moment is None else int((moment - EPOCH).total_seconds())


def seconds(conn: Connection, column: Any) -> Any:
    """A DATETIME column as seconds since 1970-01-01 00:00:00, computed by the server: PyMySQL's
    datetime for each of 100,000 rows costs more than the query."""
    if conn.dialect.name == "sqlite":
        return sql_cast(func.strftime("%s", column), Integer)
    return func.timestampdiff(literal_column("SECOND"), literal_column("'1970-01-01 00:00:00'"), column)
