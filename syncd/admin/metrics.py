"""Prometheus metrics: served by the daemon (`[metrics] listen`) or written by `run-once --metrics-file`.

The registry is syncd's own, so the endpoint and the textfile show syncd's metrics only (no
process or Python collectors from the default registry mixed into node_exporter's output).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from syncd import ledger
from syncd.errors import ConfigError

if TYPE_CHECKING:
    from syncd.run.outcome import RunResult

TEXTFILE_MODE = 0o644
OUTCOMES = ("applied", "duplicate", "superseded", "held", "rejected", "waiting")


def _epoch(utc_naive: datetime) -> float:
    return utc_naive.replace(tzinfo=UTC).timestamp()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.up = Gauge("syncd_up", "1 when the last run reached the source and the database, else 0", registry=r)
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds", "When the last run that ended with exit code 0 finished",
            registry=r,
        )
        self.last_run = Gauge("syncd_last_run_timestamp_seconds", "When the last run finished", registry=r)
        self.last_exit = Gauge("syncd_last_exit_code", "Exit code of the last run (see README)", registry=r)
        self.duration = Gauge("syncd_run_duration_seconds", "How long the last run took", registry=r)
        self.files = Counter("syncd_files", "Files handled, by outcome", ["outcome"], registry=r)
        self.rows = Counter("syncd_rows", "HL-block rows, by block and action", ["block", "action"], registry=r)
        self.deadline = Counter(
            "syncd_runs_cut", "Runs cut because they exceeded schedule.run_timeout", registry=r
        )
        self.data_age = Gauge(
            "syncd_data_age_seconds", "Now minus the as-of time (generatedAt) of the last applied export",
            registry=r,
        )
        self._as_of: float | None = None
        self.data_age.set_function(lambda: time.time() - self._as_of if self._as_of is not None else math.nan)
        for outcome in OUTCOMES:
            self.files.labels(outcome)
        for block in ledger.BLOCK_ROLES:
            for action in ledger.ACTIONS:
                self.rows.labels(block, action)
        self.up.set(0)
        self.last_success.set(math.nan)
        self.last_run.set(math.nan)
        self.last_exit.set(math.nan)
        self.duration.set(math.nan)

    def load_history(self, engine: Engine) -> None:
        """Last success and data age from the database, so a restart does not reset them."""
        from syncd.run.record import last_success

        try:
            with engine.connect() as conn:
                ok = last_success(conn)
                as_of = conn.execute(
                    select(ledger.imports.c.generated_at)
                    .where(ledger.imports.c.status == ledger.APPLIED)
                    .order_by(ledger.imports.c.id.desc())
                    .limit(1)
                ).scalar()
        except SQLAlchemyError:
            return  # nothing known yet (not migrated, unreachable): the gauges stay NaN
        if ok is not None:
            self.last_success.set(_epoch(ok))
        if isinstance(as_of, datetime):
            self._as_of = _epoch(as_of)

    def observe(self, result: RunResult) -> None:
        finished = result.finished or ledger.utcnow()
        self.up.set(0 if result.error is not None else 1)
        self.last_run.set(_epoch(finished))
        self.last_exit.set(result.exit_code)
        self.duration.set((finished - result.started).total_seconds())
        if result.exit_code == 0:
            self.last_success.set(_epoch(finished))
        for f in result.files:
            self.files.labels(f.status).inc()
            if f.status == "applied" and f.header is not None:
                self._as_of = max(self._as_of or 0.0, f.header.generated_at.timestamp())
            if f.counts is not None:
                for block, c in f.counts.by_role().items():
                    for action in ledger.ACTIONS:
                        self.rows.labels(block, action).inc(getattr(c, action))

    def serve(self, listen: str) -> None:
        host, port = parse_listen(listen)
        start_http_server(port, addr=host, registry=self.registry)

    def write_textfile(self, path: Path) -> None:
        """Written beside PATH and renamed over it, so the collector never reads half a file.

        0644 whatever the umask (prometheus_client's write_to_textfile takes the umask's, 0666 under
        umask 0): node_exporter reads it as a user of its own, and no one else may forge it. It holds
        no buyer's data, unlike state.dir (0600).
        """
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, TEXTFILE_MODE)
            with os.fdopen(fd, "wb") as out:
                os.fchmod(fd, TEXTFILE_MODE)
                out.write(generate_latest(self.registry))
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise ConfigError(f"--metrics-file {path}: cannot write it: {exc.strerror or exc}") from None


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def write_run_metrics(engine: Engine, result: RunResult, path: Path) -> None:
    """`run-once --metrics-file`: this run's counters plus the history the database remembers."""
    m = Metrics()
    m.load_history(engine)
    m.observe(result)
    m.write_textfile(path)
