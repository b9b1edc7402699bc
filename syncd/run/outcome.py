"""What a run did: each file's outcome and the run's result (its exit code), as the CLI, the daemon,
the metrics and the run journal read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from syncd.bitrix.hlblock import ApplyCounts
from syncd.bitrix.linking import RefreshCounts
from syncd.contract.records import Header
from syncd.errors import EXIT_HELD, EXIT_OK, EXIT_REJECTED, SyncdError, exit_code_for

Status = Literal["applied", "duplicate", "superseded", "held", "rejected", "waiting"]

@dataclass
class FileOutcome:
    name: str
    status: Status
    message: str = ""
    header: Header | None = None
    counts: ApplyCounts | None = None
    seconds: float = 0.0


@dataclass
class RunResult:
    started: datetime
    files: list[FileOutcome] = field(default_factory=list)
    error: SyncdError | None = None  # the run itself failed (source or database unreachable…)
    links: RefreshCounts | None = None  # set when the run relinked rows because the links changed
    finished: datetime | None = None

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return exit_code_for(self.error)
        statuses = {f.status for f in self.files}
        if "rejected" in statuses:
            return EXIT_REJECTED
        if "held" in statuses:
            return EXIT_HELD
        return EXIT_OK

    def count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)


def span(delta: timedelta) -> str:
    """A duration as a person reads it: 36.1 years, 3 h 20 min, 45 s."""
    seconds = delta.total_seconds()
    if seconds >= 2 * 365 * 86400:
        return f"{seconds / (365.25 * 86400):.1f} years"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return " ".join(f"{v} {u}" for v, u in ((hours, "h"), (minutes, "min"), (secs, "s")) if v) or "0 s"


def format_counts(counts: ApplyCounts) -> str:
    parts = []
    for role, c in counts.by_role().items():
        parts.append(f"{role} +{c.inserted} ~{c.updated} ={c.unchanged} -{c.deleted}")
    return ", ".join(parts)



STATUSES: tuple[Status, ...] = ("applied", "duplicate", "superseded", "held", "rejected", "waiting")


def outcome_json(outcome: FileOutcome) -> dict[str, object]:
    """One file of `run-once --json`: a JSON object a script reads instead of the line."""
    header = outcome.header
    return {
        "type": "file",
        "name": outcome.name,
        "status": outcome.status,
        "message": outcome.message or None,
        "export_id": header.export_id if header else None,
        "mode": header.mode if header else None,
        "generated_at": header.generated_at.isoformat() if header else None,  # ISO 8601 with its offset
        "counts": {role: dict(c.__dict__) for role, c in outcome.counts.by_role().items()} if outcome.counts
        else None,
        "seconds": round(outcome.seconds, 3),
    }


def result_json(result: RunResult, *, dry_run: bool = False) -> dict[str, object]:
    """The summary of `run-once --json`: the count per status, the exit code and the run's error."""
    took = (result.finished - result.started).total_seconds() if result.finished else 0.0
    return {
        "type": "summary",
        **{s: result.count(s) for s in STATUSES},
        "dry_run": dry_run,
        "exit_code": result.exit_code,
        "error": str(result.error) if result.error is not None else None,
        "seconds": round(took, 3),
    }
