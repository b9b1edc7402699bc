"""kill -9 of `syncd run-once` at seeded random moments of a first load and of an update.

After every kill the blocks (and syncd's digests) are exactly as before the file or exactly as after
it, checked against a checksum from a clean apply of the same file; the next run finishes the job:
exit 0, the file applied once in the ledger, moved off the source, nothing left in state.dir.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.generate import Spec
from tests.faults import (
    Generated,
    assert_applied_once,
    count,
    deliver,
    generate,
    kill_after,
    reaped,
    snapshot,
    start,
)
from tests.ops_helpers import syncd, write_config
from tests.rig.mariadb import MariaDB
from tests.rig.sshd import SshServer

pytestmark = pytest.mark.fault

# 2,000 counterparties with 10 payments and 2 documents each: ~26,000 rows, a 6 MB XML file. A first
# load then takes 1-3 s on the 2-core machine, long enough for kills to land in every step (start,
# download, parse and write, commit, move) and short enough for 10 + 10 kills in `make test`.
COUNTERPARTIES = 2000
# The update changes 30% of the counterparties (a debt and a payment each): the digest skip, the
# diff and the writes all happen, as in a busy day's export, not only the 1% of the benchmark.
CHANGED = 0.3
SEED = 20261204  # the day this test was written; any fixed value keeps a failure reproducible


@dataclass
class Exports:
    base: Generated
    update: Generated


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Exports:
    where = tmp_path_factory.mktemp("kill-exports")
    base = Spec(COUNTERPARTIES, 10, 2, base_seed=SEED)
    update = Spec(COUNTERPARTIES, 10, 2, base_seed=SEED, changed=CHANGED)
    return Exports(generate(where, "settlements_20261125_100000.xml", base),
                   generate(where, "settlements_20261125_110000.xml", update))


@dataclass
class Attempt:
    """One database, SFTP folder, state folder and config, for one kill and the run after it."""

    name: str
    url: str
    folder: Path
    state: Path
    config: Path


class Rig:
    def __init__(self, mariadb: MariaDB, sshd: SshServer, tmp: Path) -> None:
        self.mariadb, self.sshd, self.tmp = mariadb, sshd, tmp
        self.made: list[str] = []
        self.n = 0

    def attempt(self, clone_of: str, state_from: Path | None = None, *, stream: bool = False) -> Attempt:
        self.n += 1
        name = self.mariadb.clone_database(clone_of, "kill")
        self.made.append(name)
        url = self.mariadb.database_url(name) + "?charset=utf8mb4"
        folder = self.sshd.make_dir("kill")
        state = self.tmp / f"state-{self.n}"
        if state_from is not None:
            # The links fingerprint of the run before: a first run on a fresh state.dir would relink.
            shutil.copytree(state_from, state, ignore=shutil.ignore_patterns("applied", "syncd.lock"))
        config = write_config(self.tmp / f"syncd-{self.n}.toml", self.sshd, folder, url, state,
                              source={"min_age": "1s", "timezone": "Europe/Moscow",
                                      "apply_while_downloading": stream},
                              bitrix={"timezone": "Europe/Moscow"})
        return Attempt(name, url, folder, state, config)

    def release(self, a: Attempt) -> None:
        self.mariadb.drop_database(a.name)
        self.made.remove(a.name)
        shutil.rmtree(a.folder, ignore_errors=True)
        shutil.rmtree(a.state, ignore_errors=True)

    def clean_apply(self, a: Attempt, export: Generated) -> float:
        """Apply `export` without faults; the wall time of the whole `syncd run-once`."""
        deliver(self.sshd, a.folder, export)
        t0 = time.monotonic()
        result = syncd("run-once", "--config", a.config)
        took = time.monotonic() - t0
        assert result.returncode == 0, result.stdout + result.stderr
        assert_applied_once(a.url, export.export_id)
        return took


@pytest.fixture
def rig(mariadb: MariaDB, sshd: SshServer, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(mariadb, sshd, tmp_path)
    try:
        yield r
    finally:
        for name in list(r.made):
            mariadb.drop_database(name)


def kill_and_recover(rig: Rig, clone_of: str, state_from: Path | None, export: Generated, before: str, after: str,
                     duration: float, rng: random.Random, kills: int) -> Counter[str]:
    """`kills` runs of `export` on copies of `clone_of`, each SIGKILLed at a random moment of a clean
    run's `duration`; half of them apply while downloading (source.apply_while_downloading)."""
    seen: Counter[str] = Counter()
    for i in range(kills):
        moment = rng.uniform(0.0, duration)
        stream = rng.random() < 0.5
        a = rig.attempt(clone_of, state_from, stream=stream)
        deliver(rig.sshd, a.folder, export)
        proc = start("run-once", "--config", a.config)
        with reaped(proc):
            killed = kill_after(proc, moment)
        where = f"kill {i + 1}/{kills} at {moment:.2f}s of {duration:.2f}s (apply_while_downloading={stream})"
        state = snapshot(a.url)
        assert state in (before, after), f"{where}: the blocks are neither as before the file nor as after it"
        name = export.path.name
        if not killed:
            seen["not killed (had ended)"] += 1
        elif state == before:
            seen["before"] += 1
        else:  # committed; the file moved, or still waiting for the next run to find it a duplicate
            seen["after, file moved" if not (a.folder / name).exists() else "after, file still on the source"] += 1

        again = syncd("run-once", "--config", a.config)
        assert again.returncode == 0, f"{where}: the next run failed:\n{again.stdout}{again.stderr}"
        assert snapshot(a.url) == after, f"{where}: the next run did not leave the blocks as a clean apply does"
        assert_applied_once(a.url, export.export_id)
        assert not (a.folder / name).exists(), f"{where}: the file is still waiting on the source"
        assert [p.name for p in (a.folder / "processed").iterdir()] == [name], where
        assert list((a.state / "downloads").iterdir()) == [], f"{where}: downloads left in state.dir"
        rig.release(a)
    return seen


def test_kill_9_during_a_first_load_leaves_before_or_after_and_the_next_run_finishes(
    rig: Rig, bitrix_template: str, exports: Exports
) -> None:
    """10 kills in `make test`, 25 in `make faults`, at moments drawn from random.Random(SEED) over the
    wall time of a clean first load (so about one in four lands in the process's start-up, before
    any database work, and the rest spread over download, parse and write, commit and move).
    10 is what fits the suite's time budget (~5 s per kill and its recovery run)."""
    reference = rig.attempt(bitrix_template)
    before = snapshot(reference.url)
    duration = rig.clean_apply(reference, exports.base)
    after = snapshot(reference.url)
    assert after != before

    seen = kill_and_recover(rig, bitrix_template, None, exports.base, before, after, duration,
                            random.Random(SEED), count(10, 25))
    print(f"first load ({exports.base.rows} rows, clean run {duration:.2f}s): {dict(seen)}")


def test_kill_9_during_an_update_leaves_before_or_after_and_the_next_run_finishes(
    rig: Rig, bitrix_template: str, exports: Exports
) -> None:
    """The same for the next export (30% changed) on a site holding the first one: 10 kills in
    `make test`, 25 in `make faults`, moments from random.Random(SEED + 1) over a clean update's wall
    time. Here a kill can also land between the digest skip and the diff of changed counterparties."""
    site = rig.attempt(bitrix_template)
    rig.clean_apply(site, exports.base)
    before = snapshot(site.url)

    reference = rig.attempt(site.name, site.state)
    duration = rig.clean_apply(reference, exports.update)
    after = snapshot(reference.url)
    assert after != before

    seen = kill_and_recover(rig, site.name, site.state, exports.update, before, after, duration,
                            random.Random(SEED + 1), count(10, 25))
    print(f"update ({exports.update.rows} rows, clean run {duration:.2f}s): {dict(seen)}")
