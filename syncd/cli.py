"""The `syncd` command. Each command loads the config, calls one public function and maps errors to exit codes."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
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


@cli.command("run-once")
@config_option
@click.option("--approve", multiple=True, metavar="EXPORT_ID|FILE",
              help="Apply this held export despite the missing-counterparties guard. Repeatable.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing unless something went wrong.")
@errors_to_exit
def run_once_cmd(config_path: str | None, approve: tuple[str, ...], quiet: bool) -> None:
    """Apply every complete new export from the source, then exit.

    Prints one line per file (applied, duplicate, superseded, held, rejected, waiting) and a summary.
    """
    from syncd.runner import run_once

    cfg = load_config(config_path)

    def show(outcome: FileOutcome) -> None:
        if not quiet or outcome.status in ("held", "rejected"):
            click.echo(_describe(outcome))

    result = run_once(cfg, approve=approve, on_file=show)
    if result.error is not None:
        click.echo(f"syncd: error: {result.error}", err=True)
    if not quiet or result.exit_code != 0:
        click.echo(summary_line(result))
    sys.exit(result.exit_code)


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
