"""`syncd links …`: manual counterparty-to-user links, what is not linked, and a refresh."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from syncd.errors import (
    EXIT_USAGE,
)

if TYPE_CHECKING:
    from syncd.admin.links import LinkChange

from syncd.cli.base import JSON_OPTION, C, F, cli, config_option, errors_to_exit, examples, json_out, load_config


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


def _show_change(change: LinkChange, as_json: bool) -> None:
    from syncd.admin.links import change_lines

    if as_json:
        json_out(change.as_dict())
    else:
        click.echo("\n".join(change_lines(change)))
    for w in change.warnings:
        click.echo(f"syncd: warning: {w}", err=True)


def _show_rows(rows: Sequence[Any], as_json: bool, *, empty: str, headers: Sequence[str],
               cells: Callable[[Any], Sequence[object]]) -> bool:
    """Rows as JSON or as a table (or the `empty` line); True when a table was printed."""
    from syncd.admin.links import render_table

    if as_json:
        json_out([r.__dict__ for r in rows])
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
        json_out(counts.as_dict())
    else:
        click.echo(counts.line())
