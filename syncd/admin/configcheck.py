"""`syncd config check`: the configuration loaded and every connection tried, before the first run.

What borgmatic's `config validate` and rclone's checks give: the config read and checked (a bad one
never gets here: exit 3 from the loader), state.dir written to, the database reached and checked to be
migrated, the source listed, and what a run would do now. Nothing is changed anywhere.
Exit code: 3 state.dir unusable, 7 database unreachable or not migrated, 6 source unreachable, else 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from syncd import ledger
from syncd.bitrix.migrate import check_blocks
from syncd.bitrix.users import check_link_by
from syncd.config import Config, FileAction
from syncd.errors import EXIT_CONFIG, EXIT_DATABASE, EXIT_OK, EXIT_SOURCE, SyncdError
from syncd.plumbing import statedir
from syncd.plumbing.db import db_reason, make_engine, safe_url
from syncd.run.outcome import span
from syncd.sources import Listing, open_source


@dataclass
class ConfigCheck:
    lines: list[tuple[str, str]] = field(default_factory=list)  # (what, verdict)
    codes: list[int] = field(default_factory=list)  # the exit codes of the checks that failed

    def add(self, what: str, verdict: str, code: int = EXIT_OK) -> None:
        self.lines.append((what, verdict))
        if code:
            self.codes.append(code)

    @property
    def exit_code(self) -> int:
        """3 before 7 before 6: the fix nearest to this host first."""
        return next((c for c in (EXIT_CONFIG, EXIT_DATABASE, EXIT_SOURCE) if c in self.codes), EXIT_OK)

    def render(self) -> str:
        width = max(len(w) for w, _ in self.lines)
        text = [f"{w:<{width}}  {v}" for w, v in self.lines]
        verdict = "OK" if not self.exit_code else "problems found"
        return "\n".join([*text, f"result: {verdict} (exit {self.exit_code})"])


def _state(cfg: Config, out: ConfigCheck) -> None:
    root = cfg.state.dir
    probe = root / f".syncd-config-check.{os.getpid()}"
    try:
        statedir.make_dirs(root)
        statedir.write_private(probe, b"", "writing", root)
    except SyncdError as exc:
        out.add("state.dir", f"ERROR {exc}", EXIT_CONFIG)
        return
    probe.unlink(missing_ok=True)
    out.add("state.dir", f"{root}: writable by {statedir.user_name(os.geteuid())}")


def _database(cfg: Config, out: ConfigCheck) -> None:
    engine = make_engine(cfg.database, connect_timeout=10)
    where = safe_url(engine)
    try:
        with engine.connect() as conn:
            problems = check_blocks(conn, cfg.bitrix)
            present = set(inspect(conn).get_table_names())
            problems += [f"syncd's table {t} is missing" for t in ledger.metadata.tables if t not in present]
            if not problems:
                check_link_by(conn, cfg.bitrix.link_by)
    except SQLAlchemyError as exc:
        out.add("database", f"ERROR {where} unreachable: {db_reason(exc)}", EXIT_DATABASE)
        return
    except SyncdError as exc:
        problems = [str(exc)]
    finally:
        engine.dispose()
    if problems:
        out.add("database", f"ERROR {where} is reachable but not migrated: {'; '.join(problems)} "
                            "(run `syncd migrate`)", EXIT_DATABASE)
        return
    names = cfg.bitrix.blocks
    out.add("database", f"{where}: reachable, migrated (blocks {names.balance_block}, {names.payments_block}, "
                        f"{names.documents_block}; link_by {', '.join(cfg.bitrix.link_by)})")


def _source(cfg: Config, out: ConfigCheck) -> Listing | None:
    try:
        with open_source(cfg.source) as src:
            where = src.describe()
            listing = src.list()
    except SyncdError as exc:
        out.add("source", f"ERROR {exc}", EXIT_SOURCE)
        return None
    out.add("source", f"{where}: reachable, {len(listing.ready)} ready, {len(listing.waiting)} waiting, "
                      f"{len(listing.refused)} refused (pattern {cfg.source.pattern}, min_age "
                      f"{span(cfg.source.min_age)})")
    return listing


def _action(action: FileAction) -> str:
    return {"keep": "leave it", "delete": "delete it"}.get(action.kind, f"move it to {action.dir}/")


def _plan(cfg: Config, listing: Listing | None) -> str:
    if listing is None:
        return "nothing can be said until the source answers"
    if not listing.ready:
        return "nothing now: no complete file on the source"
    names = ", ".join(f.name for f in listing.ready)
    return (f"apply {names} (oldest export first); then {_action(cfg.source.on_success)} on the source, "
            f"a rejected file: {_action(cfg.source.on_failure)}")


def _schedule(cfg: Config) -> str:
    s = cfg.schedule
    when = f"cron {s.cron!r}" if s.cron else f"every {span(s.interval)}" if s.interval else "no schedule"
    return f"`syncd daemon`: {when}; a run is cut after {span(s.run_timeout)}"


def config_check(cfg: Config) -> ConfigCheck:
    """Every check run (none stops the others); nothing is written but a probe file in state.dir."""
    out = ConfigCheck()
    out.add("config", f"{cfg.path or '(no file)'}: OK")
    _state(cfg, out)
    _database(cfg, out)
    listing = _source(cfg, out)
    out.add("schedule", _schedule(cfg))
    out.add("a run now", _plan(cfg, listing))
    return out
