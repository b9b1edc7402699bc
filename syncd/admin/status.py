"""What syncd has done and what is waiting: the run journal (syncd_runs), `syncd status` and `syncd check`."""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, column, func, or_, select, table
from sqlalchemy.exc import SQLAlchemyError

from syncd import __version__, ledger
from syncd.config import Config
from syncd.errors import SourceError
from syncd.plumbing.db import db_reason, make_engine, safe_url
from syncd.plumbing.lock import LOCK_FILE
from syncd.plumbing.logs import plural, show_time
from syncd.run.record import last_success
from syncd.sources import open_source

log = logging.getLogger("syncd.status")

TRIGGERS = ("once", "cron", "daemon", "watch")


# ---------------------------------------------------------------- `syncd status`


@dataclass
class SourceFile:
    name: str
    state: str  # "ready" (complete, taken by the next run) or why it is not taken yet
    size: int | None = None
    mtime: float | None = None


@dataclass(frozen=True)
class Running:
    """The run that holds the lock file now, as it wrote itself there."""

    pid: int
    host: str
    since: datetime  # UTC

    def describe(self, zone: tzinfo) -> str:
        return f"applying now (pid {self.pid} on {self.host}, since {show_time(self.since, zone)})"


_HOLDER = re.compile(r"^pid (\d+) on (\S+) since (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$")


def running_now(state_dir: Path) -> Running | None:
    """The run holding the lock, from what it wrote in the lock file (emptied on release). Read only:
    taking the lock, even shared for a moment, could refuse a run starting at that instant."""
    try:
        m = _HOLDER.match((state_dir / LOCK_FILE).read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        return None
    if m is None:
        return None
    pid, host = int(m.group(1)), m.group(2)
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # killed without releasing: the kernel dropped its flock
        except PermissionError:
            pass  # alive, another user's
    return Running(pid, host, datetime.strptime(m.group(3), "%Y-%m-%d %H:%M:%S"))


@dataclass
class Report:
    now: datetime  # UTC, naive like the ledger
    database: str
    source: str
    database_error: str | None = None
    source_error: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    last_applied: dict[str, Any] | None = None
    as_of: datetime | None = None  # newest generatedAt among applied exports (UTC)
    last_file: dict[str, Any] | None = None  # newest applied, held or rejected file
    held: list[dict[str, Any]] = field(default_factory=list)  # held and not applied since
    rejected: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[SourceFile] = field(default_factory=list)
    unlinked: int | None = None  # balance rows with debt and no site user
    zone: tzinfo = UTC  # the zone every time is shown in (bitrix.timezone)
    not_migrated: bool = False  # reachable, but syncd's tables are not there: `syncd migrate`
    running: Running | None = None  # a run holds the lock on this host right now

    def time(self, moment: datetime | None) -> str:
        return show_time(moment, self.zone)

    @property
    def applied_age(self) -> float | None:
        finished = self.last_applied["finished_at"] if self.last_applied is not None else None
        return (self.now - finished).total_seconds() if isinstance(finished, datetime) else None

    @property
    def data_age(self) -> float | None:
        return (self.now - self.as_of).total_seconds() if self.as_of is not None else None

    def ready(self) -> list[SourceFile]:
        return [f for f in self.waiting if f.state == "ready" or f.state.startswith("applying now")]

    def to_json(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, datetime):
                return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(self.zone).isoformat()
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        result: dict[str, Any] = clean(
            {
                "version": __version__,
                "now": self.now,
                "database": {"url": self.database, "error": self.database_error,
                             "migrated": None if self.database_error and not self.not_migrated
                             else not self.not_migrated},
                "running": None if self.running is None else {
                    "pid": self.running.pid, "host": self.running.host, "since": self.running.since},
                "source": {"url": self.source, "error": self.source_error},
                "last_applied": self.last_applied,
                "last_applied_age_seconds": self.applied_age,
                "data_as_of": self.as_of,
                "data_age_seconds": self.data_age,
                "last_file": self.last_file,
                "runs": self.runs,
                "waiting": [f.__dict__ for f in self.waiting],
                "held": self.held,
                "rejected": self.rejected,
                "counterparties_without_user": self.unlinked,
            }
        )
        return result


_IMPORT_COLUMNS = ("id", "file_name", "export_id", "mode", "generated_at", "status", "finished_at", "host", "error")


def _import_dict(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {k: m[k] for k in _IMPORT_COLUMNS}


def _read_database(conn: Connection, cfg: Config, report: Report, n_runs: int) -> None:
    imports, runs = ledger.imports, ledger.runs
    keys = ("id", "started_at", "finished_at", "host", "trigger", "exit_code", "summary", "error")
    recent = select(runs).order_by(runs.c.id.desc()).limit(n_runs)
    report.runs = [{k: r._mapping[k] for k in keys} for r in conn.execute(recent)]
    row = conn.execute(
        select(imports).where(imports.c.status == ledger.APPLIED).order_by(imports.c.id.desc()).limit(1)
    ).first()
    report.last_applied = _import_dict(row) if row is not None else None
    # An as-of time ahead of the clock (approved, or applied by an older syncd) is not the data's age.
    trusted = imports.c.generated_at <= ledger.utcnow() + cfg.bitrix.max_clock_skew
    as_of = conn.execute(select(func.max(imports.c.generated_at)).where(imports.c.status == ledger.APPLIED,
                                                                       trusted)).scalar()
    report.as_of = as_of if isinstance(as_of, datetime) else None
    row = conn.execute(
        select(imports)
        .where(imports.c.status.in_([ledger.APPLIED, ledger.HELD, ledger.REJECTED]))
        .order_by(imports.c.id.desc())
        .limit(1)
    ).first()
    report.last_file = _import_dict(row) if row is not None else None
    # A held file stops counting once it (or the same export) was applied: approved, or re-exported.
    report.held = held_files(conn)
    rejected = select(imports).where(imports.c.status == ledger.REJECTED).order_by(imports.c.id.desc()).limit(10)
    report.rejected = [_import_dict(r) for r in conn.execute(rejected)]
    balance = table(cfg.bitrix.blocks.balance_table, column("UF_BITRIX_USER_ID"), column("UF_DEBT"))
    report.unlinked = int(
        conn.execute(
            select(func.count()).select_from(balance).where(
                balance.c.UF_BITRIX_USER_ID.is_(None), balance.c.UF_DEBT.is_not(None), balance.c.UF_DEBT != 0
            )
        ).scalar()
        or 0
    )


def held_files(conn: Connection) -> list[dict[str, Any]]:
    """Files held by the guard and not applied since (approved, or the same export re-sent), newest first."""
    imports = ledger.imports
    held = select(imports).where(imports.c.status == ledger.HELD).order_by(imports.c.id.desc()).limit(50)
    found = []
    for r in conn.execute(held).all():
        m = r._mapping
        done = conn.execute(
            select(imports.c.id).where(
                imports.c.status == ledger.APPLIED,
                or_(imports.c.sha256 == m["sha256"], imports.c.export_id == m["export_id"]),
            ).limit(1)
        ).first()
        if done is None:
            found.append(_import_dict(r))
    return found


def unknown_approvals(engine: Engine, approve: tuple[str, ...]) -> str | None:
    """Why `run-once --approve` cannot be right: a value that names no held file (by export id or file
    name), with what is held; None when each names one, or when the ledger cannot be read (the run
    then reports the database itself)."""
    imports = ledger.imports
    try:
        with engine.connect() as conn:
            held = held_files(conn)
            # A superseded export may be approved too (put back on the source): README "The guard".
            superseded = [dict(r._mapping) for r in conn.execute(
                select(imports.c.export_id, imports.c.file_name).where(imports.c.status == ledger.SUPERSEDED))]
    except SQLAlchemyError:
        return None
    names = {str(h[k]).lower() for h in [*held, *superseded] for k in ("export_id", "file_name")}
    unknown = [a for a in approve if a.strip().lower() not in names]
    if not unknown:
        return None
    listing = "; ".join(f"{h['export_id']} ({h['file_name']})" for h in held) or "nothing"
    return (f"--approve {unknown[0]}: nothing is held (or superseded) under that export id or file name; "
            f"held now: {listing}. Nothing was applied")


def collect(cfg: Config, *, engine: Engine | None = None, list_source: bool = True, n_runs: int = 10) -> Report:
    """Everything `status` and `check` show. Unreachable parts are reported in the Report, not raised."""
    own = engine is None
    engine = engine or make_engine(cfg.database, connect_timeout=10)
    report = Report(now=ledger.utcnow(), database=safe_url(engine), source="", zone=cfg.bitrix.timezone,
                    running=running_now(cfg.state.dir))
    try:
        with engine.connect() as conn:
            _read_database(conn, cfg, report, n_runs)
    except SQLAlchemyError as exc:
        report.database_error = db_reason(exc)
        if _no_such_table(exc):
            report.not_migrated = True
            command = f"syncd migrate -c {cfg.path}" if cfg.path else "syncd migrate"
            report.database_error = f"not migrated ({report.database_error}): run `{command}`"
    finally:
        if own:
            engine.dispose()
    if list_source:
        try:
            with open_source(cfg.source) as src:
                report.source = src.describe()
                listing = src.list()
        except SourceError as exc:
            report.source_error = str(exc)
        else:
            ready = "ready" if report.running is None else report.running.describe(report.zone)
            report.waiting = [SourceFile(f.name, ready, f.size, f.mtime) for f in listing.ready]
            report.waiting += [SourceFile(w.name, w.reason) for w in listing.waiting]
            report.waiting += [SourceFile(repr(r.name), r.reason) for r in listing.refused]
    if not report.source:
        kind = cfg.source.type
        report.source = (str(cfg.source.path) if kind == "local" else cfg.source.url if kind == "http"
                         else f"{kind}://{cfg.source.host}")
    return report



def _no_such_table(exc: SQLAlchemyError) -> bool:
    """MySQL's 1146 (or SQLite's "no such table"): the server answered, syncd's tables are not there."""
    orig = getattr(exc, "orig", None)
    args: tuple[Any, ...] = tuple(getattr(orig, "args", None) or ())
    return (len(args) > 0 and args[0] == 1146) or "no such table" in str(orig)


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def _reason(row: dict[str, Any]) -> str:
    """A ledger row's error without its status repeated (`held: held: …`)."""
    error = str(row.get("error") or "")
    prefix = f"{row.get('status')}: "
    return error[len(prefix):] if error.startswith(prefix) else error


def _run_lines(report: Report) -> list[str]:
    """The "Recent runs" table of `syncd status`."""
    out = ["Recent runs"]
    if not report.runs:
        out.append("  none recorded")
    else:
        out.append(f"  {'STARTED':<26}  {'TRIGGER':<7}  {'EXIT':>4}  {'TOOK':>6}  SUMMARY")
        for r in report.runs:
            took = (r["finished_at"] - r["started_at"]).total_seconds() if r["finished_at"] else None
            text = r["summary"] or ""
            if r["error"]:
                text += f"; {r['error']}"
            exit_code = "-" if r["exit_code"] is None else str(r["exit_code"])
            took_text = "-" if took is None else f"{took:.1f}s"
            started = report.time(r["started_at"])
            out.append(f"  {started:<26}  {r['trigger']:<7}  {exit_code:>4}  {took_text:>6}  {text}")
    return out


def render(report: Report) -> str:
    """The readable form of `syncd status` (times in bitrix.timezone, with their offset)."""
    out: list[str] = []
    db = report.database_error or "ok"
    if report.database_error and not report.not_migrated:
        db = "unreachable: " + db
    out.append(f"Database      {report.database}: {db}")
    if report.source_error:
        out.append(f"Source        {report.source}: unreachable: {report.source_error}")
    else:
        ready = len(report.ready())
        out.append(
            f"Source        {report.source}: {plural(len(report.waiting), 'file')} waiting"
            f" ({ready} complete, {len(report.waiting) - ready} not yet)"
        )
    la = report.last_applied
    if la is None:
        out.append("Last applied  none yet")
    else:
        out.append(
            f"Last applied  {la['file_name']} ({la['mode']}, export {la['export_id']}) at "
            f"{report.time(la['finished_at'])}, "
            f"{ago(report.applied_age)} ago"
        )
    out.append(f"Data as of    {report.time(report.as_of)} ({ago(report.data_age)} old)")
    if report.running is not None:
        out.append(f"Running       {report.running.describe(report.zone)}")
    if report.unlinked is not None:
        out.append(f"Counterparties with a debt but no site user: {report.unlinked}")
    if report.last_file is not None and report.last_file["status"] != ledger.APPLIED:
        lf = report.last_file
        out.append(f"LAST FILE {lf['status'].upper()}: {lf['file_name']}: {_reason(lf)}")
    out.append("")
    out += _run_lines(report)
    if report.waiting:
        out.append("")
        out.append("Waiting on the source")
        now = report.now.replace(tzinfo=UTC).timestamp()
        for f in report.waiting:
            age = f"{ago(now - f.mtime)} old" if f.mtime is not None else ""
            size = f"{f.size} bytes" if f.size is not None else ""
            out.append(f"  {f.name}  {f.state}  {size}  {age}".rstrip())
    if report.held:
        out.append("")
        out.append("Held (apply with `syncd run-once --approve EXPORT_ID` once checked)")
        for h in report.held:
            out.append(f"  {report.time(h['finished_at'])}  {h['file_name']}  {_reason(h)}")
    if report.rejected:
        out.append("")
        out.append("Rejected (latest first)")
        for h in report.rejected:
            out.append(f"  {report.time(h['finished_at'])}  {h['file_name']}  {_reason(h)}")
    return "\n".join(out)


# ---------------------------------------------------------------- `syncd check` (monitoring plugin)

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


def check(report: Report, *, max_age: float, max_wait: float) -> tuple[int, str]:
    """Nagios plugin result: (exit code, one line with perfdata).

    CRITICAL: the database or the source is unreachable; nothing applied within max_age; the newest
    file taken up was rejected or held. WARNING: a complete file has sat on the source for longer
    than max_wait (runs are not picking it up: the daemon is down or blocked by the lock).
    """
    critical: list[str] = []
    warning: list[str] = []
    if report.not_migrated:
        critical.append(f"database {report.database_error}")
    elif report.database_error:
        critical.append(f"database unreachable: {report.database_error}")
    if report.source_error:
        critical.append(f"source unreachable: {report.source_error}")
    age = report.applied_age
    if not report.database_error:
        if age is None:
            critical.append("no export applied yet")
        elif age > max_age:
            critical.append(f"last export applied {ago(age)} ago (more than {ago(max_age)})")
    lf = report.last_file
    if lf is not None and lf["status"] in (ledger.HELD, ledger.REJECTED):
        critical.append(f"last file {lf['file_name']} was {lf['status']}: {_reason(lf)}")
    now = report.now.replace(tzinfo=UTC).timestamp()
    stale = [f for f in report.ready() if f.mtime is not None and now - f.mtime > max_wait]
    if stale:
        oldest = min(f.mtime for f in stale if f.mtime is not None)
        warning.append(f"{plural(len(stale), 'complete file')} waiting on the source for over {ago(max_wait)} "
                       f"(oldest {ago(now - oldest)})")
    code = CRITICAL if critical else WARNING if warning else OK
    text = "; ".join(critical + warning) or f"last export applied {ago(age)} ago"
    perf = [f"age={int(age)}s;;{int(max_age)}" if age is not None else f"age=U;;{int(max_age)}"]
    if report.data_age is not None:
        perf.append(f"data_age={int(report.data_age)}s")
    perf.append(f"files_waiting={len(report.waiting)}")
    return code, f"SYNCD {STATE_NAMES[code]} - {text} | {' '.join(perf)}"


def succeeded_within(cfg: Config, seconds: float) -> bool:
    """Whether a run ended with exit code 0 within the last `seconds` (for `run-once --if-stale`).

    False when the database cannot say: the run then goes ahead and reports the problem itself.
    """
    engine = make_engine(cfg.database, connect_timeout=10)
    try:
        with engine.connect() as conn:
            ok = last_success(conn)
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()
    return ok is not None and (ledger.utcnow() - ok).total_seconds() < seconds
