"""The `syncd` command. Each command loads the config, calls one public function and maps errors to exit codes."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from syncd import __version__
from syncd import config as config_mod
from syncd.config import Config
from syncd.errors import ConfigError, DatabaseError, SourceError, SyncdError

if TYPE_CHECKING:
    from syncd.runner import FileOutcome, RunResult

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERNAL = 1
EXIT_CONFIG = 3
EXIT_SOURCE = 6
EXIT_DATABASE = 7


def fail(exc: BaseException) -> NoReturn:
    """One line on stderr and the documented exit code; never a traceback for a known error."""
    code = EXIT_INTERNAL
    if isinstance(exc, ConfigError):
        code = EXIT_CONFIG
    elif isinstance(exc, DatabaseError):
        code = EXIT_DATABASE
    elif isinstance(exc, SourceError):
        code = EXIT_SOURCE
    click.echo(f"syncd: error: {exc}", err=True)
    sys.exit(code)


def config_option(f: F) -> F:
    return click.option(
        "--config",
        "-c",
        "config_path",
        envvar=config_mod.ENV_CONFIG,
        metavar="PATH",
        help=f"Configuration file (TOML). Default: ${config_mod.ENV_CONFIG}.",
    )(f)


def load_config(path: str | None) -> Config:
    try:
        return config_mod.load(path)
    except ConfigError as exc:
        fail(exc)


def errors_to_exit(f: F) -> F:
    """Known errors become one line and an exit code; unknown ones too, with the traceback only at debug."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except SyncdError as exc:
            fail(exc)
        except (KeyboardInterrupt, click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            logging.getLogger("syncd").debug("internal error", exc_info=True)
            click.echo(f"syncd: internal error: {exc.__class__.__name__}: {exc} (please report it)", err=True)
            sys.exit(EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncd")
@click.option("--verbose", "-v", is_flag=True, help="Log debug details.")
def cli(verbose: bool) -> None:
    """Apply 1C settlements exports to Bitrix HL-blocks.

    \b
    Exit codes: 0 OK; 1 internal error; 2 usage; 3 bad configuration;
    4 a file was rejected; 5 a file was held by the guard; 6 source unreachable;
    7 database unreachable or not migrated; 8 another run holds the lock.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _describe(outcome: FileOutcome) -> str:
    from syncd.runner import format_counts

    head = f"{outcome.status:<10} {outcome.name}"
    if outcome.header is not None:
        head += f"  [{outcome.header.mode}, as of {outcome.header.generated_at:%Y-%m-%d %H:%M:%S}]"
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
    text = "summary: " + ", ".join(parts) + f" in {took:.1f}s"
    if result.error is not None:
        text += f"; run failed: {result.error}"
    return text


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
    from syncd import logs

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
@LOG_FORMAT
@errors_to_exit
def run_once_cmd(
    config_path: str | None, approve: tuple[str, ...], quiet: bool, if_stale: float | None,
    metrics_file: Path | None, log_format: str,
) -> None:
    """Apply every complete new export from the source, then exit.

    Prints one line per file (applied, duplicate, superseded, held, rejected, waiting) and a summary.
    Exits 8 when another run (daemon, cron, another host) holds the lock.
    """
    from syncd.runner import EXIT_LOCKED, run_once
    from syncd.status import succeeded_within

    cfg = load_config(config_path)
    _setup_logs(cfg, log_format, logging.WARNING)
    trigger = "once"
    if if_stale is not None:
        trigger = "cron"
        if succeeded_within(cfg, if_stale):
            logging.getLogger("syncd").debug("a run succeeded within --if-stale: nothing to do")
            sys.exit(0)

    def show(outcome: FileOutcome) -> None:
        if not quiet or outcome.status in ("held", "rejected"):
            click.echo(_describe(outcome))

    from syncd.db import make_engine

    engine = make_engine(cfg.database)
    try:
        result = run_once(cfg, approve=approve, on_file=show, trigger=trigger, engine=engine)
        if metrics_file is not None:
            from syncd.metrics import write_run_metrics

            write_run_metrics(engine, result, metrics_file)
    finally:
        engine.dispose()
    if quiet and result.exit_code == EXIT_LOCKED:
        sys.exit(EXIT_LOCKED)  # cron mails any output; the other run is doing the work
    if result.error is not None:
        click.echo(f"syncd: error: {result.error}", err=True)
    if not quiet or result.exit_code != 0:
        click.echo(summary_line(result))
    sys.exit(result.exit_code)


@cli.command("daemon")
@config_option
@LOG_FORMAT
@errors_to_exit
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
def status_cmd(config_path: str | None, as_json: bool) -> None:
    """What syncd did and what is waiting: recent runs, the last applied export and the data's age,
    files on the source, held and rejected files with reasons, counterparties without a site user.

    Exits 7 when the database is unreachable, 6 when the source is (after printing what it could).
    """
    import json

    from syncd.status import collect, render

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
def check_cmd(config_path: str | None, max_age: str, max_wait: str) -> None:
    """Monitoring plugin (Nagios/Icinga/Zabbix): one line with perfdata; exit 0 OK, 1 WARNING,
    2 CRITICAL (database or source unreachable, nothing applied within --max-age, last file rejected
    or held), 3 UNKNOWN (bad configuration or arguments)."""
    from syncd import logs
    from syncd.status import UNKNOWN, check, collect

    try:
        cfg = config_mod.load(config_path)
        age = config_mod.parse_duration(max_age).total_seconds()
        wait = config_mod.parse_duration(max_wait).total_seconds()
        logs.setup(level=logging.ERROR, cfg=cfg)
        code, line = check(collect(cfg), max_age=age, max_wait=wait)
        line = logs.mask(line, logs.config_secrets(cfg))
    except (SyncdError, ValueError) as exc:
        code, line = UNKNOWN, f"SYNCD UNKNOWN - {exc}"
    except Exception as exc:
        code, line = UNKNOWN, f"SYNCD UNKNOWN - internal error: {exc.__class__.__name__}: {exc}"
    click.echo(line)
    sys.exit(code)


@cli.command("migrate")
@config_option
@errors_to_exit
def migrate_cmd(config_path: str | None) -> None:
    """Create or complete syncd's tables and its three HL-blocks in the Bitrix database.

    Existing blocks are adopted: missing fields and indexes are added, nothing is dropped or changed.
    Fields or columns of the wrong type are reported and left alone (exit code 7).
    """
    from sqlalchemy.exc import OperationalError

    from syncd.bitrix.core import require_core
    from syncd.bitrix.migrate import migrate
    from syncd.db import make_engine, safe_url
    from syncd.migrations_runner import upgrade_own_tables

    cfg = load_config(config_path)
    engine = make_engine(cfg.database)
    try:
        # Checked first so syncd's tables are never created in a database that is not Bitrix's.
        with engine.connect() as conn:
            require_core(conn)
        own = upgrade_own_tables(engine)
        report = migrate(engine, cfg.bitrix)
    except OperationalError as exc:
        raise DatabaseError(f"cannot use the database {safe_url(engine)}: {exc.orig}") from None
    finally:
        engine.dispose()
    click.echo(own.line())
    for line in report.lines():
        click.echo(line)
    if report.problems:
        sys.exit(EXIT_DATABASE)
    if not own.changed and not report.changed:
        click.echo("nothing to do")


def main() -> None:
    cli()
