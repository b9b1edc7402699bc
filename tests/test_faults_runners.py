"""Several runners on one database, started at random moments: each export is applied exactly once.

"Two hosts" are two state folders (so two lock files) against one database and one SFTP folder: only
the database lock (GET_LOCK) stands between them, as between two machines. The loser exits 8 with
the holder named; a daemon that loses records exit 8 and tries again at its next run.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.exports import counterparty, xml_export
from tests.faults import count, ledger_of, query, reaped, start
from tests.ops_helpers import runs, syncd, wait_for, write_config
from tests.rig.sshd import SshServer
from tests.test_daemon import daemon

pytestmark = pytest.mark.fault

SEED = 20261204
GENERATED = datetime(2026, 11, 25, 10, 0, 0)
# 500 counterparties with 2 payments and an open document each (2,000 rows): a run that applies one
# takes about as long as its start-up, so a second runner started within that time meets it at every
# step: taking the lock, listing, applying, moving the file.
COUNTERPARTIES = 500


def full_export(i: int) -> tuple[str, bytes]:
    """Export number i: every debt is 1000 + i, so the blocks tell which export they hold."""
    export_id = str(uuid.UUID(int=SEED * 1000 + i))
    cps = [counterparty(n, debt=f"{1000 + i}.00", payments=2, documents=1) for n in range(1, COUNTERPARTIES + 1)]
    when = (GENERATED + timedelta(minutes=i)).isoformat()
    return export_id, xml_export(cps, export_id=export_id, generated_at=when)


def blocks_hold(db_url: str, i: int) -> bool:
    rows = query(db_url, "SELECT COUNT(*), MIN(UF_DEBT), MAX(UF_DEBT) FROM contractor_balance")
    return rows == [(COUNTERPARTIES, 1000.0 + i, 1000.0 + i)]


def hosts(tmp_path: Path, sshd: SshServer, folder: Path, db_url: str, n: int, **sections: dict[str, str]) -> list[Path]:
    return [write_config(tmp_path / f"host{h}.toml", sshd, folder, db_url, tmp_path / f"state{h}",
                         source={"min_age": "30s"}, **sections) for h in range(n)]


def test_two_hosts_started_at_random_offsets_apply_each_export_once(
    bitrix_db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    """5 rounds in `make test`, 20 in `make faults`: a new full export each round, host A or B
    (random.Random(SEED)) starts first and the other after an offset drawn uniformly from 0 to the
    time a lone run of such an export takes, so the second one starts before, during or after the
    first one's apply. 5 rounds cover both orders and the overlaps in ~15 s."""
    rng = random.Random(SEED)
    a, b = hosts(tmp_path, sshd, remote_dir, bitrix_db_url, 2)
    export_id, data = full_export(0)
    sshd.put(remote_dir / "settlements_000.xml", data)
    t0 = time.monotonic()
    assert syncd("run-once", "--config", a).returncode == 0
    lone = time.monotonic() - t0

    seen: Counter[str] = Counter()
    for i in range(1, count(5, 20) + 1):
        export_id, data = full_export(i)
        sshd.put(remote_dir / f"settlements_{i:03d}.xml", data)
        order = [a, b] if rng.random() < 0.5 else [b, a]
        offset = rng.uniform(0.0, lone)
        logs = [tmp_path / f"round{i}-{n}.log" for n in range(2)]
        first = start("run-once", "--config", order[0], log=logs[0])
        with reaped(first):
            time.sleep(offset)
            second = start("run-once", "--config", order[1], log=logs[1])
            with reaped(second):
                codes = [first.wait(timeout=300), second.wait(timeout=300)]
        where = f"round {i} (offset {offset:.2f}s of {lone:.2f}s): exit codes {codes}"
        assert sorted(codes) in ([0, 0], [0, 8]), where + "".join(p.read_text() for p in logs)
        for code, log in zip(codes, logs, strict=True):
            if code == 8:
                assert "another syncd run holds the database lock" in log.read_text(), where
        assert ledger_of(bitrix_db_url, export_id) == ["applied"], where
        assert blocks_hold(bitrix_db_url, i), where
        assert not (remote_dir / f"settlements_{i:03d}.xml").exists(), where
        seen["one waited (exit 8)" if 8 in codes else "one after the other"] += 1
    print(f"two hosts: {dict(seen)}")


def test_a_daemon_and_run_once_on_another_host_apply_each_export_once(
    bitrix_db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    """5 exports in `make test`, 20 in `make faults`: a daemon (1 s interval) on host A, and after
    each new file a `run-once` on host B started 0-1.5 s later (random.Random(SEED + 1)), so it
    meets the daemon idle, listing or applying. Each export is applied once, by either."""
    rng = random.Random(SEED + 1)
    a, b = hosts(tmp_path, sshd, remote_dir, bitrix_db_url, 2,
                 schedule={"interval": "1s", "run_timeout": "120s", "misfire_grace": "60s"})
    codes: list[int] = []
    with daemon(a, tmp_path) as d:
        d.wait_notify("READY=1", timeout=120)
        for i in range(count(5, 20)):
            export_id, data = full_export(i)
            sshd.put(remote_dir / f"settlements_{i:03d}.xml", data)
            time.sleep(rng.uniform(0.0, 1.5))
            once = syncd("run-once", "--config", b, timeout=300)
            codes.append(once.returncode)
            assert once.returncode in (0, 8), once.stdout + once.stderr
            if once.returncode == 8:
                assert "another syncd run holds" in once.stderr
            wait_for(f"export {i} applied", lambda eid=export_id: "applied" in ledger_of(bitrix_db_url, eid), 120,
                     every=0.1)
            assert ledger_of(bitrix_db_url, export_id) == ["applied"], f"export {i}"
            assert blocks_hold(bitrix_db_url, i)
        assert "Traceback" not in d.text()
    recorded = runs(bitrix_db_url)
    assert {r["exit_code"] for r in recorded} <= {0, 8}, recorded
    assert {r["trigger"] for r in recorded} == {"daemon", "once"}
    skipped = sum(1 for r in recorded if r["trigger"] == "daemon" and r["exit_code"] == 8)
    print(f"daemon + run-once: run-once exit codes {Counter(codes)}, daemon runs that found the lock taken: {skipped}")


def delta(j: int) -> tuple[str, bytes]:
    """Delta number j: counterparties j % 40 + 1 and (j + 7) % 40 + 1 get debt j."""
    export_id = str(uuid.UUID(int=(SEED + 1) * 1000 + j))
    cps = [counterparty(n, debt=f"{j}.00") for n in sorted({j % 40 + 1, (j + 7) % 40 + 1})]
    when = (GENERATED + timedelta(minutes=j)).isoformat()
    return export_id, xml_export(cps, export_id=export_id, generated_at=when, mode="delta")


def test_run_once_cycles_with_files_arriving_meanwhile_apply_each_file_once(
    bitrix_db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    """30 `run-once` cycles in `make test`, 150 in `make faults`, back to back, while as many small
    delta exports arrive at random moments (random.Random(SEED + 2), 0-0.6 s apart), some in the
    middle of a listing or a move, some while still being written (young: they wait for a later
    run). Every run exits 0; every file is applied exactly once and moved; the blocks end as the
    deltas say (the newest delta listing a counterparty wins, even when an older one came late)."""
    rng = random.Random(SEED + 2)
    (config,) = hosts(tmp_path, sshd, remote_dir, bitrix_db_url, 1)
    files = count(30, 150)
    exports = [delta(j) for j in range(files)]

    def drop() -> None:
        for j, (_, data) in enumerate(exports):
            time.sleep(rng.uniform(0.0, 0.6))
            sshd.put(remote_dir / f"settlements_{j:04d}.xml", data)

    dropper = threading.Thread(target=drop)
    dropper.start()
    cycles = 0
    try:
        while dropper.is_alive() or cycles < files:
            result = syncd("run-once", "--config", config, timeout=300)
            assert result.returncode == 0, result.stdout + result.stderr
            cycles += 1
    finally:
        dropper.join()
    final = syncd("run-once", "--config", config)
    assert final.returncode == 0, final.stdout + final.stderr
    for j, (export_id, _) in enumerate(exports):
        assert ledger_of(bitrix_db_url, export_id) == ["applied"], f"delta {j}"
    assert sorted(p.name for p in (remote_dir / "processed").iterdir()) == [f"settlements_{j:04d}.xml"
                                                                         for j in range(files)]
    newest: dict[int, int] = {}
    for j in range(files):
        for n in (j % 40 + 1, (j + 7) % 40 + 1):
            newest[n] = j
    debts = dict(query(bitrix_db_url, "SELECT UF_CONTRACTOR_XML_ID, UF_DEBT FROM contractor_balance"))
    assert {guid_of(n): float(j) for n, j in newest.items()} == debts
    print(f"cycles: {cycles + 1} runs for {files} files")


def guid_of(n: int) -> str:
    from tests.exports import guid

    return guid(n)
