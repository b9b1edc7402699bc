"""Builds settlements exports (format v1) for tests: XML or JSON from plain dicts.

A counterparty is a dict with the JSON keys of the contract (id, debt, payments, openDocuments…);
values are written as given, so tests can write tolerant forms like "12 345,67".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

Cp = Mapping[str, Any]

_XML_ELEMENTS = {"debt": "Debt", "payable": "Payable", "overdueDebt": "OverdueDebt", "creditLimit": "CreditLimit"}
_XML_ATTRS = ("id", "inn", "kpp", "name", "currency")


def guid(n: int, kind: int = 0) -> str:
    """A stable lower-case GUID for test object number n of a kind (0 counterparty, 1 payment, 2 document)."""
    return str(uuid.UUID(int=(kind << 64) | n))


def counterparty(
    n: int, *, debt: str = "1000.00", payments: int = 0, documents: int = 0, **extra: Any
) -> dict[str, Any]:
    cp: dict[str, Any] = {"id": guid(n), "name": f"ООО «Контрагент {n}»", "inn": f"77{n:08d}", "debt": debt}
    cp["payments"] = [
        {"id": guid(n * 1000 + i, 1), "date": f"2026-11-{i % 28 + 1:02d}T12:00:00", "sum": f"{100 + i}.00",
         "number": f"00УТ-{n:04d}{i:02d}", "kind": "bank"}
        for i in range(payments)
    ]
    cp["openDocuments"] = [
        {"id": guid(n * 1000 + i, 2), "kind": "invoice", "number": f"СЧ-{n}-{i}", "date": "2026-10-01",
         "dueDate": "2026-10-31", "amount": "500.00", "outstanding": "250.00"}
        for i in range(documents)
    ]
    cp.update(extra)
    return cp


def _header(export_id: str | None, generated_at: str, mode: str | None, payments_from: str | None) -> dict[str, Any]:
    """The header keys in the contract's order; absent optional ones left out."""
    head: dict[str, Any] = {"formatVersion": 1, "exportId": export_id or str(uuid.uuid4()), "generatedAt": generated_at}
    if mode is not None:
        head["mode"] = mode
    if payments_from is not None:
        head["paymentsFrom"] = payments_from
    return head


def xml_export(
    counterparties: Sequence[Cp],
    *,
    export_id: str | None = None,
    generated_at: str = "2026-11-25T10:00:00",
    mode: str | None = "full",
    payments_from: str | None = None,
    summary: bool = True,
    encoding: str = "UTF-8",
) -> bytes:
    root = {k: str(v) for k, v in _header(export_id, generated_at, mode, payments_from).items()}
    out = [f'<?xml version="1.0" encoding="{encoding}"?>']
    out.append("<SettlementsExport " + " ".join(f"{k}={quoteattr(v)}" for k, v in root.items()) + ">")
    n_pay = n_doc = 0
    for cp in counterparties:
        attrs = " ".join(f"{k}={quoteattr(str(cp[k]))}" for k in _XML_ATTRS if k in cp)
        out.append(f"  <Counterparty {attrs}>")
        for key, tag in _XML_ELEMENTS.items():
            if key in cp:
                out.append(f"    <{tag}>{cp[key]}</{tag}>")
        if "lastPayment" in cp:
            lp = cp["lastPayment"]
            out.append(f"    <LastPayment date={quoteattr(lp['date'])} sum={quoteattr(str(lp['sum']))}/>")
        if cp.get("payments"):
            out.append("    <Payments>")
            for p in cp["payments"]:
                out.append("      <Payment " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in p.items()) + "/>")
                n_pay += 1
            out.append("    </Payments>")
        if cp.get("openDocuments"):
            out.append("    <OpenDocuments>")
            for d in cp["openDocuments"]:
                out.append("      <Document " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in d.items()) + "/>")
                n_doc += 1
            out.append("    </OpenDocuments>")
        out.append("  </Counterparty>")
    if summary:
        out.append(f'  <Summary counterparties="{len(counterparties)}" payments="{n_pay}" documents="{n_doc}"/>')
    out.append("</SettlementsExport>")
    return ("\n".join(out) + "\n").encode(encoding)


def json_export(
    counterparties: Sequence[Cp],
    *,
    export_id: str | None = None,
    generated_at: str = "2026-11-25T10:00:00",
    mode: str | None = "full",
    payments_from: str | None = None,
    summary: bool = True,
) -> bytes:
    doc = _header(export_id, generated_at, mode, payments_from)
    doc["counterparties"] = list(counterparties)
    if summary:
        doc["summary"] = {
            "counterparties": len(counterparties),
            "payments": sum(len(cp.get("payments", [])) for cp in counterparties),
            "documents": sum(len(cp.get("openDocuments", [])) for cp in counterparties),
        }
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")
