"""Realistic settlements exports (format v1) of any size, streamed to disk.

    python -m bench.generate --counterparties 100000 --payments-per 10 --documents-per 2 \\
        --format xml --base-seed 1 --out base.xml
    python -m bench.generate ... --base-seed 1 --changed 0.01 --out next.xml   # the "next" export

What the files hold (all of it deterministic from --base-seed):

- Counterparties named like real 1C data: ``ООО «Северный Ветер»``, ``АО "Техно & Сервис"``,
  ``ИП Иванова О. С.``; 10-digit INN and a KPP for companies, 12-digit INN and no KPP for ИП.
- Lower-case GUIDs shaped like 1C's (``xxxxxxxx-xxxx-11ef-8xxx-00155dxxxxxx``).
- Amounts in the mix 1C writes: ``12345.67``; ``12 345,67`` grouped with U+00A0 (Формат()) or
  U+202F; in JSON also bare numbers. Dates as ISO datetimes, ``20.11.2026 12:30:00`` or plain dates.
- Per counterparty: Debt, Payable, OverdueDebt, often a CreditLimit, sometimes LastPayment;
  ``--payments-per`` payments dated inside the ``paymentsFrom`` window; ``--documents-per`` open
  documents, where one in ten counterparties has one document split into two due-date stages.
- A Summary with the true counts (last child in XML, last key in JSON).

``--changed R`` writes the export that follows the base one: a new exportId, generatedAt one hour
later, and round(R × N) counterparties (chosen from the seed) with a changed debt plus one payment
changed (its sum, for even picks) or added (odd picks). Everything else has the same values, in
the same formats, as in the base export. So applying base then next must write exactly
2 × round(R × N) rows: one balance row and one payment row per changed counterparty.

The file is written as it is generated, counterparty by counterparty: memory stays flat for any
size. `iter_counterparties` gives the same data as plain values (what syncd should store) for the
benchmark's baselines, which load the identical rows through LOAD DATA and executemany.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Literal
from xml.sax.saxutils import quoteattr

Format = Literal["xml", "json"]

GENERATED_AT = datetime(2026, 11, 25, 10, 0, 0)
PAYMENTS_FROM = date(2026, 8, 1)
NBSP = "\u00a0"
NNBSP = "\u202f"

# Amount styles; the weights are a rough guess at a real 1C job's mix.
CANONICAL, GROUPED_NBSP, GROUPED_NNBSP, NUMBER = range(4)
_STYLE_WEIGHTS = (60, 20, 5, 15)

_FORMS = ("ООО", "ООО", "ООО", "АО", "ПАО", "ЗАО")
_WORDS = (
    "Северный", "Ветер", "Ромашка", "Альфа", "Техно", "Сервис", "Строй", "Торг", "Восток", "Запад",
    "Логистик", "Агро", "Мед", "Снаб", "Урал", "Сибирь", "Волга", "Профи", "Гарант", "Капитал",
    "Продукт", "Инвест", "Энерго", "Мастер", "Трейд", "Групп", "Плюс", "Регион", "Партнёр", "Лидер",
)
_SURNAMES = ("Иванов", "Петров", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов", "Новиков", "Морозов")
_INITIALS = "АБВГДЕЖЗИКЛМНОПРСТ"
_PAY_KINDS = ("bank", "bank", "bank", "bank", "cash", "card", "offset", "")
_DOC_KINDS = ("invoice", "shipment", "shipment", "order", "")
_PURPOSES = (
    "Оплата по счёту № {n} от {d}, в т.ч. НДС 20%",
    "Оплата за товар по договору поставки № {n}",
    "Предоплата по заказу {n}. Сумма без НДС",
    "Возврат переплаты по акту сверки от {d}",
)


@dataclass(slots=True)
class GenPayment:
    id: str
    date: datetime  # naive, in the 1C zone
    sum: Decimal
    number: str
    kind: str
    purpose: str
    sum_style: int
    date_style: int  # 0 ISO datetime, 1 dd.mm.yyyy hh:mm:ss, 2 plain ISO date (midnight)


@dataclass(slots=True)
class GenDocument:
    id: str
    kind: str
    number: str
    date: date
    due_date: date
    amount: Decimal
    outstanding: Decimal
    amount_style: int
    outstanding_style: int


@dataclass(slots=True)
class GenCounterparty:
    index: int
    id: str
    name: str
    inn: str
    kpp: str | None
    currency: str
    debt: Decimal
    payable: Decimal
    overdue: Decimal
    credit_limit: Decimal | None
    last_payment: tuple[date, Decimal] | None
    styles: tuple[int, int, int, int]  # debt, payable, overdue, credit limit
    payments: list[GenPayment] = field(default_factory=list)
    documents: list[GenDocument] = field(default_factory=list)


@dataclass(frozen=True)
class Spec:
    counterparties: int
    payments_per: int = 10
    documents_per: int = 2
    base_seed: int = 1
    changed: float = 0.0

    @property
    def export_id(self) -> str:
        # The base and each "next" export get ids of their own, stable for the same arguments.
        rng = random.Random(f"export:{self.base_seed}:{self.counterparties}:{self.changed}")
        return _guid(rng)

    @property
    def generated_at(self) -> datetime:
        return GENERATED_AT + (timedelta(hours=1) if self.changed else timedelta(0))

    def changed_indexes(self) -> set[int]:
        k = round(self.changed * self.counterparties)
        if k == 0:
            return set()
        return set(random.Random(f"changed:{self.base_seed}").sample(range(self.counterparties), k))


# ---------------------------------------------------------------- the data


def _guid(rng: random.Random) -> str:
    # 1C GUIDs are version-1 like: the node part repeats, the rest varies.
    return (
        f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-11ef-{0x8000 | rng.getrandbits(14):04x}"
        f"-00155d{rng.getrandbits(24):06x}"
    )


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randrange(low * 100, high * 100)).scaleb(-2)


_STYLE_CUTS = tuple(sum(_STYLE_WEIGHTS[: k + 1]) / sum(_STYLE_WEIGHTS) for k in range(4))


def _style(rng: random.Random) -> int:
    # rng.choices is several times slower, and the generator draws this four times per row.
    r = rng.random()
    return next(k for k, cut in enumerate(_STYLE_CUTS) if r < cut)


def _name(rng: random.Random) -> tuple[str, str, str | None]:
    """Name, INN, KPP."""
    if rng.random() < 0.2:
        surname = rng.choice(_SURNAMES)
        female = rng.random() < 0.4
        initials = f"{rng.choice(_INITIALS)}. {rng.choice(_INITIALS)}."
        name = f"ИП {surname}{'а' if female else ''} {initials}"
        return name, f"{rng.randrange(10**11, 10**12):012d}", None
    words = rng.sample(_WORDS, 2)
    form = rng.choice(_FORMS)
    r = rng.random()
    if r < 0.1:
        title = f'{form} "{words[0]} & {words[1]}"'  # needs escaping in both formats
    elif r < 0.2:
        title = f"{form} «{words[0]}-{words[1]}»"
    else:
        title = f"{form} «{words[0]} {words[1]}»"
    inn = f"{rng.randrange(10**9, 10**10):010d}"
    return title, inn, inn[:4] + f"{rng.randrange(1, 100):02d}" + "001"


def _make(i: int, spec: Spec) -> GenCounterparty:
    # One generator per counterparty, seeded from (seed, index): any counterparty can be made alone,
    # and the "next" export draws exactly the same values before it applies its changes.
    rng = random.Random(spec.base_seed * 1_000_003 + i)
    name, inn, kpp = _name(rng)
    debt = _money(rng, 0, 2_000_000) if rng.random() < 0.85 else Decimal("0.00")
    overdue = (debt * Decimal(rng.randrange(0, 50)) / 100).quantize(Decimal("0.01"))
    payable = _money(rng, 1, 50_000) if rng.random() < 0.1 else Decimal("0.00")
    limit = Decimal(rng.randrange(1, 50) * 100_000) if rng.random() < 0.6 else None
    styles = (_style(rng), _style(rng), _style(rng), _style(rng))
    cp = GenCounterparty(
        index=i, id=_guid(rng), name=name, inn=inn, kpp=kpp,
        currency="RUB" if rng.random() < 0.97 else rng.choice(("USD", "EUR", "CNY")),
        debt=debt, payable=payable, overdue=overdue, credit_limit=limit, last_payment=None, styles=styles,
    )
    window = (GENERATED_AT - datetime.combine(PAYMENTS_FROM, datetime.min.time())).total_seconds()
    for k in range(spec.payments_per):
        when = datetime.combine(PAYMENTS_FROM, datetime.min.time()) + timedelta(seconds=rng.randrange(int(window)))
        r = rng.random()
        date_style = 0 if r < 0.85 else 1 if r < 0.95 else 2
        if date_style == 2:
            when = when.replace(hour=0, minute=0, second=0)
        refund = rng.random() < 0.03
        amount = _money(rng, 100, 500_000)
        number = f"00УТ-{rng.randrange(1, 999_999):06d}"
        cp.payments.append(GenPayment(
            id=_guid(rng), date=when, sum=-amount if refund else amount, number=number,
            kind="refund" if refund else rng.choice(_PAY_KINDS),
            purpose=rng.choice(_PURPOSES).format(n=f"СЧ-{i}-{k}", d=when.strftime("%d.%m.%Y")),
            sum_style=_style(rng), date_style=date_style,
        ))
    staged = spec.documents_per >= 2 and rng.random() < 0.1
    for k in range(spec.documents_per):
        doc_date = date(2026, 6, 1) + timedelta(days=rng.randrange(170))
        amount = _money(rng, 1_000, 900_000)
        outstanding = (amount * Decimal(rng.randrange(1, 101)) / 100).quantize(Decimal("0.01"))
        doc = GenDocument(
            id=_guid(rng), kind=rng.choice(_DOC_KINDS), number=f"00УТ-{rng.randrange(1, 99_999):05d}",
            date=doc_date, due_date=doc_date + timedelta(days=rng.choice((14, 30, 45, 60))),
            amount=amount, outstanding=outstanding, amount_style=_style(rng), outstanding_style=_style(rng),
        )
        if staged and k == 1:
            # A payment schedule: the first document again, its second stage due a month later.
            first = cp.documents[0]
            doc.id, doc.kind, doc.number, doc.date = first.id, first.kind, first.number, first.date
            doc.due_date = first.due_date + timedelta(days=30)
        cp.documents.append(doc)
    if cp.payments and rng.random() < 0.3:
        incoming = [p for p in cp.payments if p.sum > 0]
        if incoming:
            newest = max(incoming, key=lambda p: p.date)
            cp.last_payment = (newest.date.date(), newest.sum)
    return cp


def _change(cp: GenCounterparty, spec: Spec, pick: int) -> None:
    rng = random.Random(f"change:{spec.base_seed}:{cp.index}")
    cp.debt += Decimal(rng.randrange(100, 100_000))
    if pick % 2 == 0 and cp.payments:
        cp.payments[0].sum += Decimal("1.00")
    else:
        cp.payments.append(GenPayment(
            id=_guid(rng), date=spec.generated_at - timedelta(hours=2), sum=_money(rng, 100, 100_000),
            number=f"00УТ-{rng.randrange(1, 999_999):06d}", kind="bank",
            purpose=f"Оплата по счёту № СЧ-{cp.index}-new", sum_style=CANONICAL, date_style=0,
        ))
        if cp.last_payment is not None:
            cp.last_payment = (cp.payments[-1].date.date(), cp.payments[-1].sum)


def iter_counterparties(spec: Spec) -> Iterator[GenCounterparty]:
    """The export's counterparties in file order, as plain values (one at a time)."""
    changed = sorted(spec.changed_indexes())
    pick = {index: n for n, index in enumerate(changed)}
    for i in range(spec.counterparties):
        cp = _make(i, spec)
        if i in pick:
            _change(cp, spec, pick[i])
        yield cp


# ---------------------------------------------------------------- rendering


def _group(digits: str, sep: str) -> str:
    head = len(digits) % 3 or 3
    parts = [digits[:head]] + [digits[k : k + 3] for k in range(head, len(digits), 3)]
    return sep.join(parts)


def render_amount(value: Decimal, style: int, *, json_number: bool) -> str:
    """The amount as the file shows it; NUMBER is a bare JSON number in JSON, canonical in XML."""
    text = f"{value:.2f}"
    if style == CANONICAL or (style == NUMBER and not json_number):
        return text
    if style == NUMBER:
        return text  # written without quotes by the JSON writer
    sign = "-" if text.startswith("-") else ""
    whole, frac = text.lstrip("-").split(".")
    return f"{sign}{_group(whole, NBSP if style == GROUPED_NBSP else NNBSP)},{frac}"


def render_date(moment: datetime, style: int) -> str:
    if style == 1:
        return f"{moment.day:02d}.{moment.month:02d}.{moment.year} {moment.time()}"
    if style == 2:
        return str(moment.date())
    return moment.isoformat()


def _json_amount(value: Decimal, style: int) -> str:
    text = render_amount(value, style, json_number=True)
    return text if style == NUMBER else json.dumps(text, ensure_ascii=False)


def _s(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _write_xml(out: IO[str], spec: Spec) -> tuple[int, int, int]:
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(
        f'<SettlementsExport formatVersion="1" exportId="{spec.export_id}" '
        f'generatedAt="{spec.generated_at:%Y-%m-%dT%H:%M:%S}" mode="full" paymentsFrom="{PAYMENTS_FROM}">\n'
    )
    n = n_pay = n_doc = 0
    for cp in iter_counterparties(spec):
        n += 1
        kpp = f' kpp="{cp.kpp}"' if cp.kpp else ""
        sd, sp, so, sl = cp.styles
        lines = [
            f'  <Counterparty id="{cp.id}" inn="{cp.inn}"{kpp} name={quoteattr(cp.name)} currency="{cp.currency}">',
            f"    <Debt>{render_amount(cp.debt, sd, json_number=False)}</Debt>",
            f"    <Payable>{render_amount(cp.payable, sp, json_number=False)}</Payable>",
            f"    <OverdueDebt>{render_amount(cp.overdue, so, json_number=False)}</OverdueDebt>",
        ]
        if cp.credit_limit is not None:
            lines.append(f"    <CreditLimit>{render_amount(cp.credit_limit, sl, json_number=False)}</CreditLimit>")
        if cp.last_payment is not None:
            lines.append(f'    <LastPayment date="{cp.last_payment[0]}" sum="{cp.last_payment[1]:.2f}"/>')
        if cp.payments:
            lines.append("    <Payments>")
            for p in cp.payments:
                lines.append(
                    f'      <Payment id="{p.id}" number="{p.number}" date="{render_date(p.date, p.date_style)}" '
                    f'sum="{render_amount(p.sum, p.sum_style, json_number=False)}" kind="{p.kind}" '
                    f"purpose={quoteattr(p.purpose)}/>"
                )
            lines.append("    </Payments>")
            n_pay += len(cp.payments)
        if cp.documents:
            lines.append("    <OpenDocuments>")
            for d in cp.documents:
                lines.append(
                    f'      <Document id="{d.id}" kind="{d.kind}" number="{d.number}" date="{d.date}" '
                    f'dueDate="{d.due_date}" amount="{render_amount(d.amount, d.amount_style, json_number=False)}" '
                    f'outstanding="{render_amount(d.outstanding, d.outstanding_style, json_number=False)}"/>'
                )
            lines.append("    </OpenDocuments>")
            n_doc += len(cp.documents)
        lines.append("  </Counterparty>\n")
        out.write("\n".join(lines))
    out.write(f'  <Summary counterparties="{n}" payments="{n_pay}" documents="{n_doc}"/>\n</SettlementsExport>\n')
    return n, n_pay, n_doc


def _write_json(out: IO[str], spec: Spec) -> tuple[int, int, int]:
    out.write(
        f'{{\n "formatVersion": 1,\n "exportId": "{spec.export_id}",\n'
        f' "generatedAt": "{spec.generated_at:%Y-%m-%dT%H:%M:%S}",\n "mode": "full",\n'
        f' "paymentsFrom": "{PAYMENTS_FROM}",\n "counterparties": ['
    )
    n = n_pay = n_doc = 0
    for cp in iter_counterparties(spec):
        sd, sp, so, sl = cp.styles
        parts = [
            f'"id": "{cp.id}"', f'"inn": "{cp.inn}"', *([f'"kpp": "{cp.kpp}"'] if cp.kpp else []),
            f'"name": {_s(cp.name)}', f'"currency": "{cp.currency}"',
            f'"debt": {_json_amount(cp.debt, sd)}', f'"payable": {_json_amount(cp.payable, sp)}',
            f'"overdueDebt": {_json_amount(cp.overdue, so)}',
        ]
        if cp.credit_limit is not None:
            parts.append(f'"creditLimit": {_json_amount(cp.credit_limit, sl)}')
        if cp.last_payment is not None:
            parts.append(f'"lastPayment": {{"date": "{cp.last_payment[0]}", "sum": {cp.last_payment[1]:.2f}}}')
        pays = [
            f'{{"id": "{p.id}", "number": "{p.number}", "date": "{render_date(p.date, p.date_style)}", '
            f'"sum": {_json_amount(p.sum, p.sum_style)}, "kind": "{p.kind}", "purpose": {_s(p.purpose)}}}'
            for p in cp.payments
        ]
        docs = [
            f'{{"id": "{d.id}", "kind": "{d.kind}", "number": "{d.number}", "date": "{d.date}", '
            f'"dueDate": "{d.due_date}", "amount": {_json_amount(d.amount, d.amount_style)}, '
            f'"outstanding": {_json_amount(d.outstanding, d.outstanding_style)}}}'
            for d in cp.documents
        ]
        parts.append('"payments": [\n   ' + ",\n   ".join(pays) + "]")
        parts.append('"openDocuments": [\n   ' + ",\n   ".join(docs) + "]")
        out.write(("\n  " if n == 0 else ",\n  ") + "{" + ", ".join(parts) + "}")
        n += 1
        n_pay += len(cp.payments)
        n_doc += len(cp.documents)
    out.write(f'\n ],\n "summary": {{"counterparties": {n}, "payments": {n_pay}, "documents": {n_doc}}}\n}}\n')
    return n, n_pay, n_doc


def write_export(spec: Spec, fmt: Format, out: Path) -> tuple[int, int, int]:
    """Write the export to `out` as it is generated; returns (counterparties, payments, documents)."""
    with out.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as f:
        return _write_xml(f, spec) if fmt == "xml" else _write_json(f, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n")[0])
    ap.add_argument("--counterparties", type=int, required=True)
    ap.add_argument("--payments-per", type=int, default=10)
    ap.add_argument("--documents-per", type=int, default=2)
    ap.add_argument("--format", choices=("xml", "json"), default="xml")
    ap.add_argument("--changed", type=float, default=0.0,
                    help="share of counterparties changed against the base export of the same seed (0: the base)")
    ap.add_argument("--base-seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if not 0.0 <= args.changed <= 1.0:
        ap.error("--changed must be between 0 and 1")
    spec = Spec(args.counterparties, args.payments_per, args.documents_per, args.base_seed, args.changed)
    n, n_pay, n_doc = write_export(spec, args.format, args.out)
    print(f"{args.out}: {n} counterparties, {n_pay} payments, {n_doc} documents", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
