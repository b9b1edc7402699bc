"""`--json` of `syncd check` and `syncd validate`: what their lines say, as objects a script reads."""

from __future__ import annotations

from typing import Any

from syncd.admin.status import STATE_NAMES, Report
from syncd.admin.validate import Report as FileReport


def check_json(code: int, line: str, report: Report | None) -> dict[str, Any]:
    """The plugin's verdict (state, exit code, message, perfdata) and, when it was read, the status report."""
    head, _, perf = line.partition(" | ")
    message = head.split(" - ", 1)[1] if " - " in head else head
    perfdata = dict(p.split("=", 1) for p in perf.split() if "=" in p)
    return {"state": STATE_NAMES[code], "exit_code": code, "message": message, "perfdata": perfdata,
            "status": report.to_json() if report is not None else None}


def validate_json(report: FileReport) -> dict[str, Any]:
    """One file of `syncd validate --json`: its verdict, problems, header and what it holds (amounts as text)."""
    header = report.header
    return {
        "type": "file",
        "file": report.file,
        "ok": report.ok,
        "problems": report.problems,
        "export_id": header.export_id if header else None,
        "mode": header.mode if header else None,
        "generated_at": header.generated_at.isoformat() if header else None,
        "payments_from": header.payments_from.isoformat() if header and header.payments_from else None,
        "counterparties": report.counterparties,
        "payments": report.payments,
        "documents": report.documents,
        "totals": {"debt": str(report.total_debt), "overdue_debt": str(report.total_overdue_debt),
                   "payments": str(report.total_payments), "outstanding": str(report.total_outstanding)},
    }


def validate_summary(files: int, bad: int, exit_code: int) -> dict[str, Any]:
    return {"type": "summary", "files": files, "ok": files - bad, "rejected": bad, "exit_code": exit_code}
