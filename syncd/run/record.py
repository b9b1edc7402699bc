"""The run journal (syncd_runs): every run, its trigger and exit code; `syncd status`, `check` and the
metrics read it back."""

from __future__ import annotations

import logging
import socket
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from syncd import ledger
from syncd.errors import DatabaseError
from syncd.run.outcome import RunResult, Status

# The name the journal's warnings always had (before syncd.run existed): admins filter logs by it.
log = logging.getLogger("syncd.status")



def run_summary(result: RunResult) -> str:
    statuses: tuple[Status, ...] = ("applied", "duplicate", "superseded", "held", "rejected", "waiting")
    parts = [f"{result.count(s)} {s}" for s in statuses if result.count(s)]
    return ", ".join(parts) or "nothing to do"


def record_run(engine: Engine, result: RunResult, trigger: str) -> None:
    """Add the run to syncd_runs. Never fails the run: the database may be the very thing that is down."""
    try:
        with engine.begin() as conn:
            conn.execute(
                ledger.runs.insert().values(
                    started_at=result.started,
                    finished_at=result.finished or ledger.utcnow(),
                    host=socket.gethostname(),
                    trigger=trigger,
                    exit_code=result.exit_code,
                    summary=run_summary(result),
                    error=str(result.error) if result.error is not None else None,
                )
            )
    except SQLAlchemyError as exc:
        # When the run failed for the database, its own error already says so: one failure, one line.
        level = logging.DEBUG if isinstance(result.error, DatabaseError) else logging.WARNING
        log.log(level, "could not record the run in syncd_runs: %s", exc.__class__.__name__)


def last_success(conn: Connection) -> datetime | None:
    """When the newest run that ended with exit code 0 finished (UTC, naive), or None."""
    q = select(func.max(ledger.runs.c.finished_at)).where(ledger.runs.c.exit_code == 0)
    value = conn.execute(q).scalar()
    return value if isinstance(value, datetime) else None
