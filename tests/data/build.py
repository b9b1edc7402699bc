"""Small export files for the tests, built from parts so that each test shows only what it changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXPORT_ID = "2b0c4f5e-9a41-11ef-8c3e-00155d003f0a"
CP1 = "8f14e45f-ceea-11e9-88ba-00155d003f0a"
CP2 = "1b2e3c4d-5e6f-11ea-9a7b-00155d003f0a"
PAY1 = "c3a1e2f0-aa01-11ef-8c3e-00155d003f0a"
PAY2 = "c3a1e2f1-aa01-11ef-8c3e-00155d003f0a"
DOC1 = "d41d8cd9-8f00-11ef-8c3e-00155d003f0a"

HEADER = f'formatVersion="1" exportId="{EXPORT_ID}" generatedAt="2026-11-25T10:00:00"'
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def payment_xml(pid: str = PAY1, **attrs: str) -> str:
    values = {"id": pid, "date": "2026-11-20T12:30:00", "sum": "10000.00", **attrs}
    return "<Payment " + " ".join(f'{k}="{v}"' for k, v in values.items() if v is not None) + "/>"


def document_xml(did: str = DOC1, **attrs: str) -> str:
    values = {"id": did, "date": "2026-10-01", "dueDate": "2026-10-31", "outstanding": "25000.00", **attrs}
    return "<Document " + " ".join(f'{k}="{v}"' for k, v in values.items() if v is not None) + "/>"


def counterparty_xml(cid: str = CP1, *, debt: str | None = "125000.00", payments: list[str] | None = None,
                     documents: list[str] | None = None, extra: str = "", attrs: str = "") -> str:
    lines = [f'  <Counterparty id="{cid}" name="ООО «Ромашка»"{attrs}>']
    if debt is not None:
        lines.append(f"    <Debt>{debt}</Debt>")
    if extra:
        lines.append(f"    {extra}")
    if payments:
        lines += ["    <Payments>", *(f"      {p}" for p in payments), "    </Payments>"]
    if documents:
        lines += ["    <OpenDocuments>", *(f"      {d}" for d in documents), "    </OpenDocuments>"]
    lines.append("  </Counterparty>")
    return "\n".join(lines) + "\n"


def xml_export(*counterparties: str, header: str = HEADER, summary: str = "", prolog: str = DECLARATION) -> str:
    body = "".join(counterparties or (counterparty_xml(),))
    return f"{prolog}<SettlementsExport {header}>\n{body}{summary}</SettlementsExport>\n"


def payment_json(pid: str = PAY1, **values: Any) -> dict[str, Any]:
    return {"id": pid, "date": "2026-11-20T12:30:00", "sum": "10000.00", **values}


def counterparty_json(cid: str = CP1, **values: Any) -> dict[str, Any]:
    return {"id": cid, "name": "ООО «Ромашка»", "debt": "125000.00", **values}


def json_export(*counterparties: dict[str, Any], **top: Any) -> str:
    doc: dict[str, Any] = {"formatVersion": 1, "exportId": EXPORT_ID, "generatedAt": "2026-11-25T10:00:00",
                           "mode": "full", "paymentsFrom": None}
    doc.update(top)
    doc.setdefault("counterparties", list(counterparties) or [counterparty_json()])
    return json.dumps({k: v for k, v in doc.items() if v is not ...}, ensure_ascii=False, indent=1)


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path
