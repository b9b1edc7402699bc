"""The benchmark's generator writes exports syncd's own reader accepts, and --changed changes exactly what it says."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bench.generate import NBSP, Spec, iter_counterparties, main, write_export
from syncd.admin.validate import check_file
from syncd.contract.records import Counterparty, Header
from syncd.formats import open_export

MSK = ZoneInfo("Europe/Moscow")
N = 200


def _read(path: Path) -> tuple[Header, dict[str, Counterparty]]:
    with open_export(path, name=path.name, source_tz=MSK) as export:
        cps = {cp.id: cp for cp in export.counterparties()}
        return export.header, cps


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_small_export_is_accepted_by_syncds_reader(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"settlements.{fmt}"
    assert main(["--counterparties", str(N), "--payments-per", "10", "--documents-per", "2",
                 "--format", fmt, "--base-seed", "7", "--out", str(out)]) == 0

    report = check_file(out, name=out.name, source_tz=MSK)
    assert report.ok, report.problems
    assert (report.counterparties, report.payments, report.documents) == (N, N * 10, N * 2)
    header, cps = _read(out)

    assert header.export_id == Spec(N, base_seed=7).export_id
    assert header.mode == "full" and header.payments_from is not None
    assert len(cps) == N
    assert sum(len(cp.payments) for cp in cps.values()) == N * 10
    assert sum(len(cp.documents) for cp in cps.values()) == N * 2
    # The reader gives back the generator's values, whatever format each amount was written in.
    want = {g.id: g for g in iter_counterparties(Spec(N, base_seed=7))}
    assert set(cps) == set(want)
    for guid, cp in cps.items():
        g = want[guid]
        assert (cp.debt, cp.payable, cp.overdue_debt, cp.credit_limit) == (g.debt, g.payable, g.overdue, g.credit_limit)
        assert (cp.name, cp.inn, cp.kpp) == (g.name, g.inn, g.kpp)
        assert [(p.id, p.sum, p.date.replace(tzinfo=None)) for p in cp.payments] == [
            (p.id, p.sum, p.date) for p in g.payments]
        assert [(d.id, d.due_date, d.outstanding) for d in cp.documents] == [
            (d.id, d.due_date, d.outstanding) for d in g.documents]
    # The mix the reader must cope with is really in the file.
    text = out.read_text(encoding="utf-8")
    assert NBSP in text and "\u202f" in text and "ИП " in text and "«" in text and "&" in text


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_changed_export_differs_in_exactly_the_chosen_counterparties(tmp_path: Path, fmt: str) -> None:
    base, nxt = tmp_path / f"base.{fmt}", tmp_path / f"next.{fmt}"
    write_export(Spec(N, base_seed=3), fmt, base)  # type: ignore[arg-type]
    spec = Spec(N, base_seed=3, changed=0.05)
    write_export(spec, fmt, nxt)  # type: ignore[arg-type]

    h1, old = _read(base)
    h2, new = _read(nxt)

    assert h1.export_id != h2.export_id and h2.generated_at > h1.generated_at
    picked = {g.id for g in iter_counterparties(Spec(N, base_seed=3)) if g.index in spec.changed_indexes()}
    assert len(picked) == round(0.05 * N)
    assert set(old) == set(new)
    differing = {guid for guid in old if old[guid] != new[guid]}
    assert differing == picked
    for guid in picked:
        a, b = old[guid], new[guid]
        assert b.debt > a.debt
        assert (a.documents, a.name, a.inn, a.credit_limit) == (b.documents, b.name, b.inn, b.credit_limit)
        pays_a, pays_b = {p.id: p for p in a.payments}, {p.id: p for p in b.payments}
        # One payment changed (its sum, by 1.00) or one added; none gone.
        added = set(pays_b) - set(pays_a)
        changed = [i for i in pays_a if pays_a[i] != pays_b.get(i)]
        assert set(pays_a) <= set(pays_b)
        assert len(added) + len(changed) == 1
        for i in changed:
            assert pays_b[i].sum - pays_a[i].sum == Decimal("1.00")


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    write_export(Spec(20, base_seed=5), "xml", a)
    write_export(Spec(20, base_seed=5), "xml", b)
    assert a.read_bytes() == b.read_bytes()
    write_export(Spec(20, base_seed=6), "xml", b)
    assert a.read_bytes() != b.read_bytes()
