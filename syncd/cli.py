"""The `syncd` command. Each command loads the config, calls one public function and maps errors to exit codes."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from syncd import __version__
from syncd import config as config_mod
from syncd.config import Config
from syncd.errors import (
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_INTERNAL,
    EXIT_LOCKED,
    EXIT_REJECTED,
    EXIT_SOURCE,
    EXIT_USAGE,
    ConfigError,
    SyncdError,
    exit_code_for,
)
from syncd.plumbing.memory import limit_malloc_arenas

if TYPE_CHECKING:
    from syncd.admin.links import LinkChange
    from syncd.admin.validate import Limits
    from syncd.run import FileOutcome, RunResult

F = TypeVar("F", bound=Callable[..., Any])

def error_out(exc: BaseException) -> None:
    """The failure's one line on stderr: `syncd: error: …`, or JSON under `--log-format json`."""
    from syncd.plumbing.logs import error_line

    ctx = click.get_current_context(silent=True)
    json_format = ctx is not None and ctx.params.get("log_format") == "json"
    click.echo(error_line(str(exc), "json" if json_format else "text"), err=True)


def fail(exc: BaseException) -> NoReturn:
    """One line on stderr and the documented exit code; never a traceback for a known error."""
    error_out(exc)
    sys.exit(exit_code_for(exc))


CONFIG_HELP = f"Configuration file (TOML). Default: ${config_mod.ENV_CONFIG}. Before or after the command."
C = "-c /etc/syncd/shop1.toml"  # the examples' config


def config_option(f: F) -> F:
    """`-c/--config` after the command; no envvar: $SYNCD_CONFIG is the group's default, never overriding `-c`."""
    return click.option("--config", "-c", "config_path", metavar="PATH", help=CONFIG_HELP)(f)


def config_path_of(path: str | None) -> str | None:
    """The path after the command, else the one before it (or $SYNCD_CONFIG, the group's default)."""
    found = path or click.get_current_context().find_root().params.get("config_path")
    return str(found) if found else None


def examples(*typed: str) -> Callable[[F], F]:
    """Real commands at the end of a command's --help (the innermost decorator: click reads the doc after it)."""
    text = "\n\n    \b\n    Examples:\n" + "".join(f"      {t}\n" for t in typed)
    return lambda f: setattr(f, "__doc__", (f.__doc__ or "").rstrip() + text) or f  # type: ignore[func-returns-value]


def load_config(path: str | None) -> Config:
    try:
        return config_mod.load(config_path_of(path))
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
@click.option("--config", "-c", "config_path", envvar=config_mod.ENV_CONFIG, metavar="PATH", help=CONFIG_HELP)
@click.option("--verbose", "-v", is_flag=True, help="Log debug details.")
def cli(config_path: str | None, verbose: bool) -> None:
    """Apply 1C settlements exports to Bitrix HL-blocks.

    \b
    Examples:
      syncd -c /etc/syncd/shop1.toml migrate
      syncd run-once -c /etc/syncd/shop1.toml
      SYNCD_CONFIG=/etc/syncd/shop1.toml syncd status

    \b
    Exit codes: 0 OK; 1 internal error; 2 usage; 3 bad configuration;
    4 a file was rejected; 5 a file was held by the guard; 6 source unreachable;
    7 database unreachable or not migrated; 8 another run holds the lock.

    \b
    Shell completion (bash, zsh, fish), e.g. in ~/.bashrc:
      eval "$(_SYNCD_COMPLETE=bash_source syncd)"
    (zsh: zsh_source in ~/.zshrc; fish: _SYNCD_COMPLETE=fish_source syncd | source)
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
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
@LOG_FORMAT
@errors_to_exit
@examples(f"syncd run-once {C}", f"syncd run-once {C} --approve 2b0c4f5e-9a41-11ef-8c3e-00155d003f0a",
          f"syncd run-once {C} --if-stale 90m --quiet")
def run_once_cmd(
    config_path: str | None, approve: tuple[str, ...], quiet: bool, if_stale: float | None,
    metrics_file: Path | None, log_format: str,
) -> None:
    """Apply every complete new export from the source, then exit.

    Prints one line per file (applied, duplicate, superseded, held, rejected, waiting) and a summary.
    Exits 8 when another run (daemon, cron, another host) holds the lock.
    """
    from syncd.admin.status import succeeded_within
    from syncd.daemon import run_once_stoppable

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
                                    progress=progress)
        metrics_error: ConfigError | None = None
        if metrics_file is not None:
            from syncd.admin.metrics import write_run_metrics

            try:
                write_run_metrics(engine, result, metrics_file)
            except ConfigError as exc:  # the run's own outcome still comes first
                metrics_error = exc
    finally:
        engine.dispose()
    if quiet and result.exit_code == EXIT_LOCKED:
        sys.exit(EXIT_LOCKED)  # cron mails any output; the other run is doing the work
    for error in (result.error, metrics_error):
        if error is not None:
            error_out(error)
    code = result.exit_code or (EXIT_CONFIG if metrics_error else 0)
    if not quiet or code != 0:
        click.echo(summary_line(result))
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
@examples(f"syncd check {C} --max-age 2h", f"syncd check {C} --max-age 3h --max-wait 90m")
def check_cmd(config_path: str | None, max_age: str, max_wait: str) -> None:
    """Monitoring plugin (Nagios/Icinga/Zabbix): one line with perfdata; exit 0 OK, 1 WARNING,
    2 CRITICAL (database or source unreachable, nothing applied within --max-age, last file rejected
    or held), 3 UNKNOWN (bad configuration or arguments).
    """
    from syncd.admin.status import UNKNOWN, check, collect
    from syncd.plumbing import logs

    try:
        cfg = config_mod.load(config_path_of(config_path))
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


def _link_input(f: F) -> F:
    """Wrong input (no such user, malformed GUID…) is a usage error: exit 2, nothing was changed."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from syncd.admin.links import LinkError

        try:
            return f(*args, **kwargs)
        except LinkError as exc:
            click.echo(f"syncd: error: {exc}; nothing was changed", err=True)
            sys.exit(EXIT_USAGE)

    return wrapper  # type: ignore[return-value]


def _json_out(data: object) -> None:
    import json

    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="JSON for machines instead of the table.")


def _show_change(change: LinkChange, as_json: bool) -> None:
    from syncd.admin.links import change_lines

    if as_json:
        _json_out(change.as_dict())
    else:
        click.echo("\n".join(change_lines(change)))
    for w in change.warnings:
        click.echo(f"syncd: warning: {w}", err=True)


def _show_rows(rows: Sequence[Any], as_json: bool, *, empty: str, headers: Sequence[str],
               cells: Callable[[Any], Sequence[object]]) -> bool:
    """Rows as JSON or as a table (or the `empty` line); True when a table was printed."""
    from syncd.admin.links import render_table

    if as_json:
        _json_out([r.__dict__ for r in rows])
        return False
    if not rows:
        click.echo(empty)
        return False
    click.echo(render_table(headers, [cells(r) for r in rows]))
    return True


@cli.group("links")
@examples(f"syncd links unmatched {C} --limit 20", f"syncd links add {C} 7707083893 buyer@example.com")
def links_group() -> None:
    """Link counterparties to Bitrix users: manual links, refresh, and what is not linked.

    \b
    Strategies are set in bitrix.link_by (README "Linking counterparties to users").
    Wrong input (no such user, inactive user, malformed GUID or INN) exits 2 and changes nothing.
    """


@links_group.command("add")
@config_option
@click.argument("counterparty", metavar="GUID|INN")
@click.argument("user", metavar="USER")
@click.option("--comment", "-m", metavar="TEXT", help="Why (kept with the link).")
@click.option("--replace", is_flag=True, help="Replace an existing manual link of this GUID or INN.")
@click.option("--no-refresh", is_flag=True, help="Only save the link; the blocks follow on the next run.")
@JSON_OPTION
@errors_to_exit
@_link_input
@examples(f"syncd links add {C} 7707083893 buyer@example.com -m sales", f"syncd links add {C} 7707083893 42 --replace")
def links_add_cmd(config_path: str | None, counterparty: str, user: str, comment: str | None, replace: bool,
                  no_refresh: bool, as_json: bool) -> None:
    """Link a counterparty GUID (or every counterparty with an INN) to USER: an ID, login or e-mail.

    The link is used by the "manual" strategy and is applied to all three blocks at once.
    """
    from syncd.admin.links import add_link, open_engine

    cfg = load_config(config_path)
    with open_engine(cfg) as engine:
        change = add_link(engine, cfg, counterparty, user, comment=comment, replace=replace, refresh=not no_refresh)
    _show_change(change, as_json)


@links_group.command("remove")
@config_option
@click.argument("counterparty", metavar="GUID|INN")
@click.option("--no-refresh", is_flag=True, help="Only delete the link; the blocks follow on the next run.")
@JSON_OPTION
@errors_to_exit
@_link_input
@examples(f"syncd links remove {C} 7707083893", f"syncd links remove {C} 7707083893 --no-refresh")
def links_remove_cmd(config_path: str | None, counterparty: str, no_refresh: bool, as_json: bool) -> None:
    """Remove the manual link of a GUID or INN; other strategies decide again.
    """
    from syncd.admin.links import open_engine, remove_link

    cfg = load_config(config_path)
    with open_engine(cfg) as engine:
        change = remove_link(engine, cfg, counterparty, refresh=not no_refresh)
    _show_change(change, as_json)


@links_group.command("list")
@config_option
@JSON_OPTION
@errors_to_exit
@examples(f"syncd links list {C}", f"syncd links list {C} --json")
def links_list_cmd(config_path: str | None, as_json: bool) -> None:
    """Every manual link, its user's state and the counterparties it covers.
    """
    from syncd.admin.links import list_links, open_engine

    cfg = load_config(config_path)
    with open_engine(cfg) as engine:
        rows = list_links(engine, cfg)
    _show_rows(
        rows, as_json, empty="no manual links (add one with `syncd links add GUID|INN USER`)",
        headers=["KEY", "USER", "LOGIN", "EMAIL", "STATE", "COUNTERPARTIES", "NAME", "CREATED (UTC)", "BY", "COMMENT"],
        cells=lambda r: [f"{r.key_kind.upper()} {r.key}", r.user_id, r.login, r.email, r.user_state, r.counterparties,
                         r.counterparty_name, r.created_at, r.created_by, r.comment],
    )


@links_group.command("unmatched")
@config_option
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Show only the N largest debts.")
@JSON_OPTION
@errors_to_exit
@examples(f"syncd links unmatched {C} --limit 20", f"syncd links unmatched {C} --json")
def links_unmatched_cmd(config_path: str | None, limit: int | None, as_json: bool) -> None:
    """Counterparties that owe something and have no user, largest debt first.
    """
    from syncd.admin.links import open_engine, unmatched

    cfg = load_config(config_path)
    with open_engine(cfg) as engine:
        rows = unmatched(engine, cfg, limit=limit)
    if _show_rows(
        rows, as_json, empty="every counterparty with debt has a user",
        headers=["GUID", "INN", "KPP", "NAME", "DEBT", "OVERDUE", "CURRENCY"],
        cells=lambda r: [r.guid, r.inn, r.kpp, r.name, r.debt, r.overdue_debt, r.currency],
    ):
        click.echo(f"{len(rows)} counterpart{'y' if len(rows) == 1 else 'ies'} with debt and no user"
                   + (f" (the {limit} largest)" if limit and len(rows) == limit else ""))


@links_group.command("conflicts")
@config_option
@JSON_OPTION
@errors_to_exit
@examples(f"syncd links conflicts {C}", f"syncd links conflicts {C} --json")
def links_conflicts_cmd(config_path: str | None, as_json: bool) -> None:
    """Counterparties where several users match, or where strategies disagree.

    The lowest user ID of the first strategy that found someone is stored; a manual link
    (`syncd links add`) settles a conflict.
    """
    from syncd.admin.links import conflicts, open_engine

    cfg = load_config(config_path)
    with open_engine(cfg) as engine:
        rows = conflicts(engine, cfg)
    if _show_rows(
        rows, as_json, empty="no conflicts",
        headers=["GUID", "INN", "NAME", "STORED", "DECIDED BY", "PROBLEM", "FOUND"],
        cells=lambda r: [r.guid, r.inn, r.name, r.user_id, r.strategy, ", ".join(r.kinds), r.details()],
    ):
        click.echo(f"{len(rows)} conflict{'' if len(rows) == 1 else 's'}")


@links_group.command("refresh")
@config_option
@JSON_OPTION
@errors_to_exit
@examples(f"syncd links refresh {C}", f"syncd links refresh {C} --json")
def links_refresh_cmd(config_path: str | None, as_json: bool) -> None:
    """Recompute the user of every row in the three blocks now (runs do it too).
    """
    from syncd.admin.links import open_engine, refresh_links

    cfg = load_config(config_path)
    with open_engine(cfg) as engine:
        counts = refresh_links(engine, cfg)
    if as_json:
        _json_out(counts.as_dict())
    else:
        click.echo(counts.line())


def _zone(_ctx: click.Context, _param: click.Parameter, value: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"unknown time zone {value!r} (use a tz database name such as Europe/Moscow)") from None


def _limits(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> Limits:
    from syncd.admin.validate import limits_from

    try:
        return limits_from(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--timezone", "source_tz", default="Europe/Moscow", show_default=True, callback=_zone,
              metavar="ZONE", help="Time zone of the 1C infobase: datetimes without an offset are read in it.")
@click.option("--bitrix-timezone", "bitrix_tz", default="Europe/Moscow", show_default=True, callback=_zone,
              metavar="ZONE", help="Time zone of the Bitrix site (bitrix.timezone): every datetime must convert to it.")
@click.option("--limit", "limits", multiple=True, callback=_limits, metavar="KEY=VALUE",
              help="Raise or lower one of the [limits] (e.g. --limit max_counterparty_size=32MiB); "
                   "the defaults are those of config.example.toml.")
@examples("syncd validate settlements_20261125_100000.xml", "syncd validate --timezone Asia/Yekaterinburg *.json.gz")
def validate_cmd(files: tuple[Path, ...], source_tz: tzinfo, bitrix_tz: tzinfo, limits: Limits) -> None:
    """Check export files against format v1, offline (no configuration, no database).

    Prints every problem (file, line or record, field, what is wrong) and, per file, what it
    holds: counterparties, payments, open documents and their totals. Files may be XML or JSON,
    plain, .gz or a single-file .zip.

    \b
    Exit codes: 0 every file is a valid export; 4 at least one file has problems
    (syncd would reject it, as run-once's 4); 2 usage error.
    """
    from syncd.admin.validate import check_file, format_report

    bad = 0
    for path in files:
        report = check_file(path, name=str(path), source_tz=source_tz, bitrix_tz=bitrix_tz, limits=limits)
        click.echo(format_report(report))
        bad += not report.ok
    if len(files) > 1:
        click.echo(f"{len(files) - bad} of {len(files)} files OK")
    sys.exit(EXIT_REJECTED if bad else 0)


def main() -> None:
    limit_malloc_arenas()
    cli()
