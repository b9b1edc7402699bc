"""The commands: run-once, daemon, status, check, migrate, demo, config check, validate."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from syncd import config as config_mod
from syncd.config import Config
from syncd.errors import (
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_LOCKED,
    EXIT_REJECTED,
    EXIT_SOURCE,
    EXIT_USAGE,
    ConfigError,
    SyncdError,
)
from syncd.plumbing.memory import limit_malloc_arenas

if TYPE_CHECKING:
    from syncd.admin.validate import Limits
    from syncd.run import FileOutcome, RunResult

from syncd.cli.base import (
    C,
    cli,
    config_option,
    config_path_of,
    error_out,
    errors_to_exit,
    examples,
    json_out,
    load_config,
)


def _describe(outcome: FileOutcome, zone: tzinfo) -> str:
    from syncd.plumbing.logs import show_time
    from syncd.run import format_counts

    head = f"{outcome.status:<10} {outcome.name}"
    if outcome.header is not None:
        head += f"  [{outcome.header.mode}, as of {show_time(outcome.header.generated_at, zone)}]"
    if outcome.counts is not None:
        head += f"  {format_counts(outcome.counts)}"
    if outcome.message:
        head += f"  {outcome.message}"
    if outcome.status != "waiting":
        head += f"  ({outcome.seconds:.2f}s)"
    return head


def summary_line(result: RunResult) -> str:
    parts = [f"{result.count(s)} {s}" for s in ("applied", "duplicate", "superseded", "held", "rejected", "waiting")]
    took = (result.finished - result.started).total_seconds() if result.finished else 0.0
    return "summary: " + ", ".join(parts) + f" in {took:.1f}s"  # a failure is on stderr, once


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return config_mod.parse_duration(value).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def _verbose() -> bool:
    return bool(click.get_current_context().find_root().params.get("verbose"))


def _setup_logs(cfg: Config, log_format: str, level: int) -> None:
    from syncd.plumbing import logs

    logs.setup(level=logging.DEBUG if _verbose() else level, fmt="json" if log_format == "json" else "text", cfg=cfg)


LOG_FORMAT = click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="Log lines on stderr: text (journald priorities under systemd) or one JSON object per line.",
)


@cli.command("run-once")
@config_option
@click.option("--approve", multiple=True, metavar="EXPORT_ID|FILE",
              help="Apply this held export despite the missing-counterparties guard. Repeatable.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print nothing unless something went wrong (a run refused by the lock is silent too).")
@click.option("--if-stale", "if_stale", metavar="DURATION", callback=_duration,
              help="Do nothing (exit 0, silently) if a run succeeded within DURATION, e.g. 90m: for cron, "
                   "so it only steps in when the daemon is dead.")
@click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Write Prometheus metrics for node_exporter's textfile collector (atomically).")
@click.option("--dry-run", is_flag=True, help="Download, validate and diff each file in a transaction rolled "
              "back: the counts it would write; nothing changed, every file left on the source.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: one per file, then the summary.")
@LOG_FORMAT
@errors_to_exit
@examples(f"syncd run-once {C}", f"syncd run-once {C} --approve 2b0c4f5e-9a41-11ef-8c3e-00155d003f0a",
          f"syncd run-once {C} --if-stale 90m --quiet")
def run_once_cmd(
    config_path: str | None, approve: tuple[str, ...], quiet: bool, if_stale: float | None,
    metrics_file: Path | None, dry_run: bool, as_json: bool, log_format: str,
) -> None:
    """Apply every complete new export from the source, then exit.

    Prints one line per file (applied, duplicate, superseded, held, rejected, waiting) and a summary.
    Exits 8 when another run (daemon, cron, another host) holds the lock.
    """
    from syncd.admin.status import succeeded_within
    from syncd.daemon import run_once_stoppable
    from syncd.run.outcome import outcome_json

    cfg = load_config(config_path)
    _setup_logs(cfg, log_format, logging.WARNING)
    trigger = "once"
    if if_stale is not None:
        trigger = "cron"
        if succeeded_within(cfg, if_stale):
            logging.getLogger("syncd").debug("a run succeeded within --if-stale: nothing to do")
            sys.exit(0)

    def show(outcome: FileOutcome) -> None:
        if as_json:
            json_out(outcome_json(outcome), line=True)
        elif not quiet or outcome.status in ("held", "rejected"):
            click.echo(_describe(outcome, cfg.bitrix.timezone))

    from syncd.plumbing.db import make_engine

    engine = make_engine(cfg.database)
    try:
        from syncd.admin.status import unknown_approvals
        from syncd.plumbing.progress import TerminalProgress

        if approve and (wrong := unknown_approvals(engine, approve)) is not None:
            click.echo(f"syncd: error: {wrong}", err=True)
            sys.exit(EXIT_USAGE)

        progress = TerminalProgress() if sys.stderr.isatty() and not quiet else None
        result = run_once_stoppable(cfg, approve=approve, on_file=show, trigger=trigger, engine=engine,
                                    progress=progress, dry_run=dry_run)
        metrics_error: ConfigError | None = None
        if metrics_file is not None and not dry_run:
            from syncd.admin.metrics import write_run_metrics

            try:
                write_run_metrics(engine, result, metrics_file)
            except ConfigError as exc:  # the run's own outcome still comes first
                metrics_error = exc
    finally:
        engine.dispose()
    _finish_run(result, metrics_error, quiet=quiet, as_json=as_json, dry_run=dry_run)


def _finish_run(result: RunResult, metrics_error: ConfigError | None, *, quiet: bool, as_json: bool,
                dry_run: bool) -> NoReturn:
    """The run's error (once), its summary line or JSON object, and its exit code."""
    from syncd.run.outcome import result_json

    if quiet and result.exit_code == EXIT_LOCKED:
        sys.exit(EXIT_LOCKED)  # cron mails any output; the other run is doing the work
    for error in (result.error, metrics_error):
        if error is not None:
            error_out(error)
    code = result.exit_code or (EXIT_CONFIG if metrics_error else 0)
    if as_json:
        json_out(result_json(result, dry_run=dry_run), line=True)
    elif not quiet or code != 0:
        click.echo(("dry run, nothing changed: " if dry_run else "") + summary_line(result))
    sys.exit(code)


@cli.command("daemon")
@config_option
@LOG_FORMAT
@errors_to_exit
@examples(f"syncd daemon {C}", f"syncd daemon {C} --log-format json")
def daemon_cmd(config_path: str | None, log_format: str) -> None:
    """Run syncd in the foreground on its [schedule] (a first run at start).

    SIGTERM/SIGINT finish the current file and exit 0; SIGHUP re-reads the configuration (a bad one
    is refused, the running one kept). Under systemd use Type=notify (READY, STATUS, WATCHDOG).
    """
    from syncd.daemon import run_daemon

    cfg = load_config(config_path)
    _setup_logs(cfg, log_format, logging.INFO)
    level = logging.DEBUG if _verbose() else logging.INFO
    sys.exit(run_daemon(cfg, log_format="json" if log_format == "json" else "text", log_level=level))


@cli.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of the table.")
@errors_to_exit
@examples(f"syncd status {C}", f"syncd status {C} --json | jq .data_as_of")
def status_cmd(config_path: str | None, as_json: bool) -> None:
    """What syncd did and what is waiting: recent runs, the last applied export and the data's age,
    files on the source, held and rejected files with reasons, counterparties without a site user.

    Exits 7 when the database is unreachable, 6 when the source is (after printing what it could).
    """
    import json

    from syncd.admin.status import collect, render

    cfg = load_config(config_path)
    _setup_logs(cfg, "text", logging.WARNING)
    report = collect(cfg)
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(render(report))
    if report.database_error:
        sys.exit(EXIT_DATABASE)
    if report.source_error:
        sys.exit(EXIT_SOURCE)


@cli.command("check")
@config_option
@click.option("--max-age", default="2h", show_default=True, metavar="DURATION",
              help="CRITICAL when no export was applied within this time.")
@click.option("--max-wait", default="1h", show_default=True, metavar="DURATION",
              help="WARNING when a complete file has waited on the source longer than this.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: state, message, perfdata, status report.")
@examples(f"syncd check {C} --max-age 2h", f"syncd check {C} --max-age 3h --max-wait 90m", f"syncd check {C} --json")
def check_cmd(config_path: str | None, max_age: str, max_wait: str, as_json: bool) -> None:
    """Monitoring plugin (Nagios/Icinga/Zabbix): one line with perfdata; exit 0 OK, 1 WARNING,
    2 CRITICAL (database or source unreachable, nothing applied within --max-age, last file rejected
    or held), 3 UNKNOWN (bad configuration or arguments).
    """
    from syncd.admin.jsonout import check_json
    from syncd.admin.status import UNKNOWN, Report, check, collect
    from syncd.plumbing import logs

    report: Report | None = None
    try:
        cfg = config_mod.load(config_path_of(config_path))
        age = config_mod.parse_duration(max_age).total_seconds()
        wait = config_mod.parse_duration(max_wait).total_seconds()
        logs.setup(level=logging.ERROR, cfg=cfg)
        report = collect(cfg)
        code, line = check(report, max_age=age, max_wait=wait)
        line = logs.mask(line, logs.config_secrets(cfg))
    except (SyncdError, ValueError) as exc:
        code, line = UNKNOWN, f"SYNCD UNKNOWN - {exc}"
    except Exception as exc:
        code, line = UNKNOWN, f"SYNCD UNKNOWN - internal error: {exc.__class__.__name__}: {exc}"
    if as_json:
        json_out(check_json(code, line, report))
    else:
        click.echo(line)
    sys.exit(code)


@cli.command("migrate")
@config_option
@errors_to_exit
@examples(f"syncd migrate {C}", f"syncd {C} migrate")
def migrate_cmd(config_path: str | None) -> None:
    """Create or complete syncd's tables and its three HL-blocks in the Bitrix database.

    Existing blocks are adopted: missing fields and indexes are added, nothing is dropped or changed.
    Fields or columns of the wrong type are reported and left alone (exit code 7).
    """
    from syncd.admin.setup import migrate_database

    cfg = load_config(config_path)
    own, report = migrate_database(cfg)
    click.echo(own.line())
    for line in report.lines():
        click.echo(line)
    if report.problems:
        sys.exit(EXIT_DATABASE)
    if not own.changed and not report.changed:
        click.echo("nothing to do")


@cli.command("demo")
@click.option("--database", metavar="URL", required=True, help="An empty MariaDB database for the Bitrix core.")
@click.option("--exports", type=click.Path(file_okay=False, path_type=Path), metavar="DIR", help="Put a sample in DIR.")
@errors_to_exit
@examples("syncd demo --database 'mysql+pymysql://syncd:pw@localhost/syncd_demo' --exports /tmp/syncd-demo/exports")
def demo_cmd(database: str, exports: Path | None) -> None:
    """A staging site: the minimal Bitrix core and two linked users in an empty MariaDB, to try `syncd
    migrate` and `run-once` on the real path."""
    from syncd.admin.demo import stand_in_bitrix

    click.echo("\n".join(stand_in_bitrix(database, exports)))


@cli.group("config")
def config_group() -> None:
    """The configuration file: check it before the first run."""


@config_group.command("check")
@config_option
@errors_to_exit
@examples(f"syncd config check {C}", f"syncd {C} config check")
def config_check_cmd(config_path: str | None) -> None:
    """Load and validate the configuration, try state.dir, the database and the source, and print what a
    run would do now; changes nothing.

    Exit codes: 0 all good; 3 bad configuration or state.dir; 7 database unreachable or not migrated; 6 source."""
    from syncd.admin.configcheck import config_check

    report = config_check(load_config(config_path))
    click.echo(report.render())
    sys.exit(report.exit_code)


def _validate_option(name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        from syncd.admin import validate

        return getattr(validate, name)(*args)
    return call


_zone, _limits = _validate_option("zone_option"), _validate_option("limits_option")


@cli.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--timezone", "source_tz", default="Europe/Moscow", show_default=True, callback=_zone,
              metavar="ZONE", help="Time zone of the 1C infobase: datetimes without an offset are read in it.")
@click.option("--bitrix-timezone", "bitrix_tz", default="Europe/Moscow", show_default=True, callback=_zone,
              metavar="ZONE", help="Time zone of the Bitrix site (bitrix.timezone): every datetime must convert to it.")
@click.option("--limit", "limits", multiple=True, callback=_limits, metavar="KEY=VALUE",
              help="Raise or lower one of the [limits] (e.g. --limit max_counterparty_size=32MiB); "
                   "the defaults are those of config.example.toml.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: one per file (verdict, problems, header, totals), then a summary.")
@examples("syncd validate settlements_20261125_100000.xml", "syncd validate --timezone Asia/Yekaterinburg *.json.gz",
          "syncd validate --json *.xml")
def validate_cmd(files: tuple[Path, ...], source_tz: tzinfo, bitrix_tz: tzinfo, limits: Limits,
                 as_json: bool) -> None:
    """Check export files against format v1, offline (no configuration, no database).

    Prints every problem (file, line or record, field, what is wrong) and, per file, what it
    holds: counterparties, payments, open documents and their totals. Files may be XML or JSON,
    plain, .gz or a single-file .zip.

    \b
    Exit codes: 0 every file is a valid export; 4 at least one file has problems
    (syncd would reject it, as run-once's 4); 2 usage error.
    """
    from syncd.admin.jsonout import validate_json, validate_summary
    from syncd.admin.validate import check_file, format_report

    bad = 0
    for path in files:
        report = check_file(path, name=str(path), source_tz=source_tz, bitrix_tz=bitrix_tz, limits=limits)
        if as_json:
            json_out(validate_json(report), line=True)
        else:
            click.echo(format_report(report))
        bad += not report.ok
    code = EXIT_REJECTED if bad else 0
    if as_json:
        json_out(validate_summary(len(files), bad, code), line=True)
    elif len(files) > 1:
        click.echo(f"{len(files) - bad} of {len(files)} files OK")
    sys.exit(code)


def main() -> None:
    limit_malloc_arenas()
    cli()
