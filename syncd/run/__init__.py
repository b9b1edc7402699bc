"""One sync, start to end: the runner, what it reports, and the run journal.

`runner` composes one sync (source -> reader -> checks -> writer -> ledger); `outcome` is what it reports;
`record` writes the run journal; `dryrun` is the apply's transaction, rolled back in `run-once --dry-run`;
`watch` is the daemon's watch between runs (lists the source every `schedule.watch` on a kept connection,
starts a run for a new complete file). The CLI and the daemon call only these:

- `run_once(cfg, …) -> RunResult`: every pending complete export, each applied whole or not at all,
  under the run lock (dry_run=True: applied and rolled back, nothing recorded or moved); never raises
  for an expected failure (`RunResult.exit_code` says what happened).
- `Runner`: the same run as an object, for the daemon to cut one that overstays (`Runner.stop`).
- `RunResult`, `FileOutcome`, `Status`, `format_counts`: what a run did, file by file.
- `run_summary`, `last_success`: the run journal (syncd_runs), written at the end of every run.
"""

from syncd.run.outcome import FileOutcome, RunResult, Status, format_counts
from syncd.run.record import last_success, run_summary
from syncd.run.runner import Runner, run_once

__all__ = ["FileOutcome", "RunResult", "Runner", "Status", "format_counts", "last_success", "run_once",
           "run_summary"]
