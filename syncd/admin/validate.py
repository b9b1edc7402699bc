"""`syncd validate`: the whole file read, every problem recorded instead of stopping at the first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from syncd.contract.checks import Checker
from syncd.contract.limits import DEFAULT as DEFAULT_LIMITS
from syncd.contract.limits import Limits, parse_limit
from syncd.contract.records import Header
from syncd.errors import ExportError
from syncd.formats import scan_export
from syncd.plumbing.logs import plural

_ZERO: Final = Decimal("0.00")

__all__ = ["Limits", "Report", "check_file", "format_report", "limits_from", "limits_option", "zone_option"]


def zone_option(_ctx: click.Context, _param: click.Parameter, value: str) -> tzinfo:
    """`--timezone` and `--bitrix-timezone`: a tz database name, else a usage error naming it."""
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"unknown time zone {value!r} (use a tz database name such as Europe/Moscow)") from None


def limits_option(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> Limits:
    """`--limit KEY=VALUE` items: the [limits], else a usage error naming the item."""
    try:
        return limits_from(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def limits_from(items: Iterable[str]) -> Limits:
    """The [limits] with `KEY=VALUE` items (`syncd validate --limit`) over the defaults; ValueError naming
    the item that is wrong."""
    values: dict[str, int] = {}
    for item in items:
        key, sep, text = item.partition("=")
        try:
            if not sep:
                raise ValueError("expected KEY=VALUE")
            values[key.strip()] = parse_limit(key.strip(), int(text) if text.strip().isdigit() else text.strip())
        except ValueError as exc:
            raise ValueError(f"{item!r}: {exc}") from None
    return Limits(**values)


@dataclass
class Report:
    file: str
    header: Header | None = None
    problems: list[str] = field(default_factory=list)
    counterparties: int = 0
    payments: int = 0
    documents: int = 0
    total_debt: Decimal = _ZERO
    total_overdue_debt: Decimal = _ZERO
    total_payments: Decimal = _ZERO
    total_outstanding: Decimal = _ZERO
    unlisted_problems: int = 0  # beyond MAX_PROBLEMS: counted, not listed

    @property
    def ok(self) -> bool:
        return not self.problems


def check_file(path: Path, *, name: str, source_tz: tzinfo, bitrix_tz: tzinfo | None = None,
               limits: Limits = DEFAULT_LIMITS) -> Report:
    """Read the whole file and record every problem instead of stopping at the first one."""
    report = Report(file=name)
    checker: Checker | None = None
    try:
        with scan_export(path, name=name, source_tz=source_tz, bitrix_tz=bitrix_tz,
                         limits=limits) as (checker, header, records, rescan):
            report.header = header
            for _ in records:
                pass
            checker.finish(rescan)
    except ExportError as e:
        # Only a broken file (syntax, compression) stops the reading; it is the last problem.
        report.problems.append(str(e))
    if checker is not None:
        report.problems[:0] = checker.problems
        report.unlisted_problems = checker.more_problems
        if checker.more_problems:
            report.problems.insert(len(checker.problems),
                                   f"{name}: … and {checker.more_problems} more problems (not listed)")
        tally = checker.tally
        report.counterparties, report.payments, report.documents = (
            tally.counterparties, tally.payments, tally.documents)
        report.total_debt, report.total_overdue_debt = tally.debt, tally.overdue_debt
        report.total_payments, report.total_outstanding = tally.payments_sum, tally.outstanding
    return report


def format_report(report: Report) -> str:
    """The report as a human reads it: each problem on a line, then what the file holds."""
    lines = list(report.problems)
    header = report.header
    if header is not None:
        window = f", payments from {header.payments_from}" if header.payments_from else ""
        lines.append(f"{report.file}: export {header.export_id}, {header.mode}, generated at "
                     f"{header.generated_at.isoformat()}{window}")
    lines.append(
        f"{report.file}: {plural(report.counterparties, 'counterparty', 'counterparties')}, "
        f"{plural(report.payments, 'payment')}, {plural(report.documents, 'open document')}; "
        f"debt {_money(report.total_debt)}, overdue "
        f"{_money(report.total_overdue_debt)}, payments {_money(report.total_payments)}, "
        f"outstanding on documents {_money(report.total_outstanding)}"
        + ("" if report.ok else " (totals count only the records without problems)")
    )
    count = len(report.problems) + report.unlisted_problems - (1 if report.unlisted_problems else 0)
    verdict = "OK" if report.ok else f"{count} problem(s): the file would be rejected"
    lines.append(f"{report.file}: {verdict}")
    return "\n".join(lines)


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}".replace(",", " ")
