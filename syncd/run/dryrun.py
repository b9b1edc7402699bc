"""`syncd run-once --dry-run`: the apply's transaction, committed as usual or, in a dry run, rolled back.

A dry run downloads, validates and diffs each file against the database exactly as a run does (the
writer's statements run inside the transaction), prints the counts it would write, and rolls back: the
blocks, the ledger and the run journal are unchanged and every file stays on the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

DRY_RUN_NOTE = "dry run: rolled back, nothing changed"


@contextmanager
def transaction(engine: Engine, dry_run: bool) -> Iterator[Connection]:
    """engine.begin(), or in a dry run a transaction that is rolled back whatever happens inside it."""
    if not dry_run:
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            yield conn
        finally:
            trans.rollback()
