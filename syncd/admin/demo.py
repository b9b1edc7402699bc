"""`make demo` (`syncd demo`): the main job with no server at all; `syncd demo --database URL`: a staging
Bitrix in an empty MariaDB.

A bundled sample export in a local folder is applied to an SQLite file that stands in for the
Bitrix database (the demo creates the minimal Bitrix core tables there on purpose, and two site
users linked to counterparties). The code path is the production one: config → runner → source →
reader → writer → ledger; only the SQL dialect differs. Then it prints the balances and the ledger.

With `--database URL` nothing is applied: the minimal Bitrix core tables (those syncd reads and writes:
HL-block entities, user fields, b_user) and two site users linked to the sample's counterparties are
created in an empty MariaDB database, so an admin can try `syncd migrate` and `run-once` on the real
path before pointing syncd at the shop. A database that holds any other table is refused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from syncd import config as config_mod
from syncd import ledger
from syncd.bitrix import core
from syncd.bitrix.migrate import migrate, upgrade_own_tables
from syncd.bitrix.schema import block_specs, data_table
from syncd.config import DatabaseConfig
from syncd.errors import ConfigError, DatabaseError
from syncd.formats import open_export
from syncd.plumbing import statedir
from syncd.plumbing.db import db_reason, make_engine, safe_url
from syncd.run import format_counts, run_once

SAMPLE = "settlements_sample.xml"


def _place_sample(folder: Path) -> Path:
    """The bundled sample in `folder`, dated an hour ago (complete for any min_age up to that)."""
    target = folder / SAMPLE
    target.write_bytes((resources.files("syncd") / "samples" / SAMPLE).read_bytes())
    old = time.time() - 3600  # as if 1C finished writing it an hour ago
    os.utime(target, (old, old))
    return target


def _sample_guids(n: int) -> list[str]:
    with resources.as_file(resources.files("syncd") / "samples" / SAMPLE) as path, \
            open_export(path, name=SAMPLE, source_tz=ZoneInfo("Europe/Moscow")) as export:
        return [cp.id for _, cp in zip(range(n), export.counterparties(), strict=False)]


def _add_buyers(conn: Connection) -> None:
    """Two buyers registered on the site saved their counterparty GUID in UF_1C_CONTRACTOR_ID."""
    for i, guid in enumerate(_sample_guids(2), start=1):
        core.add_user(conn, login=f"buyer{i}", email=f"buyer{i}@example.com", fields={"UF_1C_CONTRACTOR_ID": guid})


def stand_in_bitrix(url: str, exports: Path | None = None) -> list[str]:
    """The minimal Bitrix core and two linked buyers in the empty database at `url`; what to do next.

    ConfigError when the database holds tables of its own (it may be a real shop); DatabaseError when
    it cannot be reached. Run twice, the second run finds the core there and changes nothing.
    """
    engine = make_engine(DatabaseConfig(url=url))
    where = safe_url(engine)
    ours = set(core.metadata.tables) | set(ledger.metadata.tables)
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            fresh = not core.core_present(conn)
        foreign = sorted(t for t in present if t not in ours and not t.startswith(("contractor_", "syncd_")))
        if foreign:
            raise ConfigError(f"{where} holds {len(foreign)} tables of its own ({', '.join(foreign[:5])}"
                              f"{' …' if len(foreign) > 5 else ''}): `syncd demo --database` fills only an "
                              "empty database; create one (CREATE DATABASE syncd_demo) and point it there")
        core.create_stand_in_core(engine)
        if fresh:
            with engine.begin() as conn:
                _add_buyers(conn)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot reach the database {where}: {db_reason(exc)}") from None
    finally:
        engine.dispose()
    lines = [f"{where}: " + ("the minimal Bitrix core created (b_hlblock_entity, b_user_field, b_user, "
                             "b_uts_user …) with users buyer1 and buyer2 linked to the sample's first two "
                             "counterparties" if fresh else "the Bitrix core is there already; nothing changed")]
    if exports is not None:
        statedir.make_dirs(exports)
        lines.append(f"sample export: {_place_sample(exports)}")
    lines += ["next: set database.url to this database (and source.path to the sample's folder) in a config,",
              "then run `syncd config check`, `syncd migrate` and `syncd run-once --dry-run`, then `syncd run-once`."]
    return lines


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}".replace(",", " ")


def run(workdir: Path) -> int:
    if workdir.exists():
        shutil.rmtree(workdir)
    exports = workdir / "exports"
    exports.mkdir(parents=True)
    _place_sample(exports)

    cfg = config_mod.from_mapping(
        {
            "source": {"type": "local", "path": str(exports), "timezone": "Europe/Moscow"},
            "database": {"url": f"sqlite:///{workdir / 'bitrix.sqlite'}"},
            "bitrix": {"timezone": "Europe/Moscow"},
            "state": {"dir": str(workdir / "state")},
        }
    )
    engine = make_engine(cfg.database)
    core.create_stand_in_core(engine)
    upgrade_own_tables(engine)
    migrate(engine, cfg.bitrix)

    with engine.begin() as conn:
        _add_buyers(conn)

    print(f"syncd demo: applying {SAMPLE} from {exports} to {engine.url.database}\n")
    result = run_once(cfg, engine=engine)
    for f in result.files:
        counts = f"  {format_counts(f.counts)}" if f.counts else ""
        print(f"{f.status:<10} {f.name}{counts}  {f.message}".rstrip())
    if result.error:
        print(f"run failed: {result.error}", file=sys.stderr)

    balance = data_table(block_specs(cfg.bitrix.blocks)[0])
    with engine.connect() as conn:
        rows = [["counterparty", "user", "debt", "overdue", "credit limit", "last payment", "as of"]]
        for r in conn.execute(select(balance).order_by(balance.c.UF_NAME)):
            last = f"{r.UF_LAST_PAYMENT_DATE} {_money(r.UF_LAST_PAYMENT_SUM)}" if r.UF_LAST_PAYMENT_DATE else "—"
            rows.append([r.UF_NAME or r.UF_CONTRACTOR_XML_ID, str(r.UF_BITRIX_USER_ID or "—"), _money(r.UF_DEBT),
                         _money(r.UF_OVERDUE_DEBT), _money(r.UF_CREDIT_LIMIT), last, str(r.UF_UPDATED_AT)])
        print("\nContractorBalance:\n" + _table(rows))
        rows = [["#", "file", "status", "export id", "as of (UTC)", "balance +/~/=", "payments +/~/="]]
        for e in reversed(ledger.recent_imports(conn)):
            rows.append([str(e.id), e.file_name, e.status, (e.export_id or "")[:8] + "…", str(e.generated_at),
                         f"{e.balance_inserted}/{e.balance_updated}/{e.balance_unchanged}",
                         f"{e.payments_inserted}/{e.payments_updated}/{e.payments_unchanged}"])
        print("\nLedger (syncd_imports):\n" + _table(rows))
    print(f"\nThe database is {workdir / 'bitrix.sqlite'}; run `make demo` again to start over.")
    return result.exit_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=Path("demo-state"), help="work folder (recreated)")
    sys.exit(run(parser.parse_args().dir))


if __name__ == "__main__":
    main()
