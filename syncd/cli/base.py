"""The `syncd` group and what every command shares: the config option, examples in --help, one error line
and the documented exit code for each failure."""

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
from syncd.errors import (
    EXIT_INTERNAL,
    ConfigError,
    SyncdError,
    exit_code_for,
)

if TYPE_CHECKING:
    pass


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


def json_out(data: object, *, line: bool = False) -> None:
    import json

    click.echo(json.dumps(data, ensure_ascii=False, indent=None if line else 2, default=str))


JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="JSON for machines instead of the table.")
