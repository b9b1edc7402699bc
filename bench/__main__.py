"""`make bench`: syncd end to end against the database's own bulk load, on a private MariaDB and sshd.

    .venv/bin/python -m bench                 # S, M and L
    .venv/bin/python -m bench --quick         # S and M
    .venv/bin/python -m bench --sizes L,3L    # any of S, M, L, 3L (3L: the memory run, XML first load only)
    .venv/bin/python -m bench --sizes L --profile   # the same steps under py-spy; prints where the time goes
    .venv/bin/python -m bench --sizes L --slow-link 200   # also the 1% step over a 200 Mbit/s link (root, tc)

For each size, in one run on the same server: syncd `run-once` as a subprocess, reading from the
sshd over SFTP, on (1) the first export (XML; JSON again on a fresh database), (2) the same export
under a new file name, (3) the next export with 1% of counterparties changed; (1) and (3) again
with apply_while_downloading = true (applied as it downloads); then (4) the
baselines, LOAD DATA LOCAL INFILE and a PyMySQL executemany upsert of the very same rows into
empty tables of the same schema. Peak RSS is the syncd process's own (wait4 rusage), rows written
come from syncd's ledger (syncd_imports).

Generated exports and TSVs are cached in ./bench-out/data (gitignored), so a second run skips
generation. The table is printed and written into BENCHMARKS.md between the bench markers.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pymysql

from bench import baseline
from bench.generate import Spec, write_export
from tests.rig.mariadb import MariaDB, running_mariadb
from tests.rig.sshd import SshServer, running_sshd, set_age

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-out"
BIN = Path(sys.executable).parent
SEED = 20261125
BUFFER_POOL = "1G"  # a small production Bitrix server's setting; the tests use 256M

SIZES = {"S": 300, "M": 10_000, "L": 100_000, "3L": 300_000}
MARK_BEGIN = "<!-- bench:begin -->"
MARK_END = "<!-- bench:end -->"


@dataclass
class Result:
    size: str
    step: str
    seconds: float
    rows: int  # rows in the file (or loaded, for the baselines)
    rss_mb: float | None = None
    cpu: float | None = None  # user + system seconds of the syncd process: steadier than wall time on a busy box
    written: int | None = None
    status: str = ""
    ratio: float | None = None  # LOAD DATA seconds / these seconds: share of the database's own bulk speed
    db_cpu: float | None = None  # CPU seconds MariaDB spent meanwhile: with syncd's, what the cores had to do

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class SizeData:
    name: str
    spec: Spec
    files: dict[str, Path] = field(default_factory=dict)  # base.xml, next.xml, base.json, next.json
    counts: dict[str, int] = field(default_factory=dict)  # rows in each file
    tsv: dict[str, Path] = field(default_factory=dict)
    linked: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- data


def _cached(path: Path, make: Any) -> int:
    """Rows in a generated export, generating it once (the count sits beside it)."""
    count = path.with_name(path.name + ".rows")
    if path.exists() and count.exists():
        return int(count.read_text())
    tmp = path.with_name(path.name + ".tmp")
    n, n_pay, n_doc = make(tmp)
    tmp.rename(path)
    count.write_text(str(n + n_pay + n_doc))
    return n + n_pay + n_doc


def prepare_data(name: str, formats: tuple[str, ...], with_next: bool) -> SizeData:
    d = OUT / "data" / f"{name}-{SEED}"
    d.mkdir(parents=True, exist_ok=True)
    base = Spec(SIZES[name], 10, 2, SEED)
    data = SizeData(name, base)
    for fmt in formats:
        for kind, spec in (("base", base), ("next", Spec(base.counterparties, 10, 2, SEED, changed=0.01))):
            if kind == "next" and not with_next:
                continue
            path = d / f"{kind}.{fmt}"
            t0 = time.monotonic()
            data.counts[f"{kind}.{fmt}"] = _cached(path, lambda out, s=spec, f=fmt: write_export(s, f, out))
            data.files[f"{kind}.{fmt}"] = path
            _log(f"{name}: {path.name} ready ({path.stat().st_size / 1e6:.0f} MB, {time.monotonic() - t0:.0f}s)")
    tsv_dir = d / "tsv"
    linked_file = tsv_dir / "linked.tsv"
    if linked_file.exists():
        data.tsv = {t: tsv_dir / f"{t}.tsv" for t in baseline.TABLES}
        data.linked = {g: int(u) for g, u in (line.split("\t") for line in linked_file.read_text().splitlines())}
    else:
        data.tsv, data.linked = baseline.write_tsv(base, tsv_dir)
        linked_file.write_text("".join(f"{g}\t{u}\n" for g, u in data.linked.items()))
    return data


# ---------------------------------------------------------------- the site


def _params(server: MariaDB, db: str) -> dict[str, Any]:
    u = server.url
    return {"host": u.host or "127.0.0.1", "port": u.port or 3306, "user": u.username or "root",
            "password": u.password or "", "database": db}


def make_site(server: MariaDB, prefix: str, linked: dict[str, int]) -> tuple[str, dict[str, Any]]:
    """A database with the stand-in Bitrix core, syncd's tables and blocks, and the linked users."""
    from syncd.bitrix import core
    from syncd.bitrix.migrate import migrate, upgrade_own_tables
    from syncd.config import BitrixConfig, DatabaseConfig
    from syncd.plumbing.db import make_engine

    name = server.create_database(prefix)
    url = server.database_url(name)
    engine = make_engine(DatabaseConfig(url=url))
    core.create_stand_in_core(engine)
    upgrade_own_tables(engine)
    from zoneinfo import ZoneInfo

    migrate(engine, BitrixConfig(timezone=ZoneInfo("Europe/Moscow")))
    engine.dispose()
    params = _params(server, name)
    conn = pymysql.connect(**params, charset="utf8mb4")
    try:
        with conn.cursor() as cur:
            users = [(uid, f"cp{uid}", "", "Y", "2026-01-01 00:00:00", "s1") for uid in linked.values()]
            cur.executemany(
                "INSERT INTO b_user (ID, LOGIN, PASSWORD, ACTIVE, DATE_REGISTER, LID) VALUES (%s, %s, %s, %s, %s, %s)",
                users,
            )
            cur.executemany(
                "INSERT INTO b_uts_user (VALUE_ID, UF_1C_CONTRACTOR_ID) VALUES (%s, %s)",
                [(uid, guid.upper() if uid % 2 else guid) for guid, uid in linked.items()],  # 1C may send upper case
            )
        conn.commit()
    finally:
        conn.close()
    return url, params


def write_config(path: Path, ssh: SshServer, remote: Path, url: str, state: Path, *, stream: bool = False) -> None:
    path.write_text(
        "[source]\n"
        'type = "sftp"\n'
        f"apply_while_downloading = {'true' if stream else 'false'}\n"
        f'host = "{ssh.host}"\nport = {ssh.port}\nusername = "{ssh.username}"\n'
        f'private_key = "{ssh.client_key}"\nknown_hosts = "{ssh.known_hosts}"\n'
        f'remote_dir = "{remote}"\npattern = "settlements_*"\nmin_age = "1s"\n'
        'on_success = "move:processed"\non_failure = "move:failed"\ntimezone = "Europe/Moscow"\n'
        'io_timeout = "300s"\n'
        f'\n[database]\nurl = "{url}"\n'
        '\n[bitrix]\ntimezone = "Europe/Moscow"\n'
        f'\n[state]\ndir = "{state}"\nkeep_applied = 1\n'
    )


def deliver(ssh: SshServer, remote: Path, src: Path, name: str) -> None:
    """Put the export on the SFTP server as 1C would: complete, owned by the login user, old enough."""
    target = remote / name
    shutil.copyfile(src, target)
    os.chown(target, ssh.uid, ssh.gid)
    set_age(target, 600)


# ---------------------------------------------------------------- running syncd


def run_syncd(config: Path, profile_to: Path | None = None) -> tuple[float, float, float, int, str]:
    """`syncd run-once` as a subprocess: (wall seconds, peak RSS MB, CPU seconds, exit code, output)."""
    cmd = [str(BIN / "syncd"), "run-once", "--config", str(config)]
    if profile_to is not None:
        # --idle: time spent waiting for MariaDB or the network is part of the wall time we explain.
        cmd = [str(BIN / "py-spy"), "record", "--idle", "--threads", "-r", "100", "-f", "raw",
               "-o", str(profile_to), "--", *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    assert proc.stdout is not None
    out = proc.stdout.read().decode(errors="replace")
    # wait4 rather than proc.wait(): the rusage of the reaped child carries its peak RSS (KiB on Linux).
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, proc.returncode, out


def ledger_since(params: dict[str, Any], after_id: int) -> tuple[int, list[tuple[str, int]]]:
    """(last import id, [(status, rows written)]) for imports recorded after `after_id`."""
    roles, actions = ("balance", "payments", "documents"), ("inserted", "updated", "deleted")
    written = " + ".join(f"{r}_{a}" for r in roles for a in actions)
    conn = pymysql.connect(**params, charset="utf8mb4")
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT id, status, {written} FROM syncd_imports WHERE id > %s ORDER BY id", (after_id,))
            rows = cur.fetchall()
    finally:
        conn.close()
    last = max([after_id, *(int(r[0]) for r in rows)])
    return last, [(str(r[1]), int(r[2])) for r in rows]


class Stand:
    """One database + one remote folder + one config: a site syncd keeps applying exports to."""

    def __init__(self, server: MariaDB, ssh: SshServer, prefix: str, linked: dict[str, int], work: Path,
                 *, stream: bool = False):
        self.server = server
        self.url, self.params = make_site(server, prefix, linked)
        self.remote = ssh.make_dir(prefix)
        self.ssh = ssh
        work.mkdir(parents=True, exist_ok=True)
        self.config = work / f"{prefix}.toml"
        self.state = work / f"{prefix}-state"
        write_config(self.config, ssh, self.remote, self.url, self.state, stream=stream)
        self.last_import = 0
        self.work = work

    def apply(self, size: str, step: str, src: Path, name: str, rows: int, profile: bool = False) -> Result:
        deliver(self.ssh, self.remote, src, name)
        prof = self.work / f"{size}-{step.replace(' ', '_')}.pyspy.txt" if profile else None
        db_before = self.server.cpu_seconds()
        seconds, rss, cpu, code, out = run_syncd(self.config, prof)
        db_cpu = _spent(self.server, db_before)
        self.last_import, entries = ledger_since(self.params, self.last_import)
        statuses = ",".join(s for s, _ in entries) or f"exit {code}"
        if code != 0 or not entries:
            _log(f"{size} {step}: syncd exit {code}\n{out[-3000:]}")
        written = sum(w for _, w in entries)
        _log(f"{size} {step}: {seconds:.1f}s (CPU {cpu:.1f}s, MariaDB {db_cpu or 0:.1f}s), {rss:.0f} MB, "
             f"{statuses}, {written} rows written")
        if prof is not None:
            _log(summarize_profile(prof))
        return Result(size, step, seconds, rows, rss, cpu, written, statuses, db_cpu=db_cpu)

    def drop(self, server: MariaDB) -> None:
        server.drop_database(self.params["database"])
        shutil.rmtree(self.remote, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)


# ---------------------------------------------------------------- one size


@contextlib.contextmanager
def slow_link(mbit: int | None) -> Iterator[None]:
    """Loopback limited to `mbit` (tc tbf on lo, root only) while the block runs: a WAN-like SFTP link.

    It limits MariaDB's traffic too, so it is used only around the 1% changed steps, which send little.
    """
    if not mbit:
        yield
        return
    subprocess.run(["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", f"{mbit}mbit", "burst", "256kb",
                    "latency", "50ms"], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=False, capture_output=True)


def bench_size(server: MariaDB, ssh: SshServer, name: str, profile: bool, link: int | None = None) -> list[Result]:
    memory_only = name == "3L"
    formats = ("xml",) if memory_only or profile else ("xml", "json")
    data = prepare_data(name, formats, with_next=not memory_only)
    work = OUT / "runs" / datetime.now().strftime("%Y%m%d-%H%M%S")
    results: list[Result] = []
    key = name.lower()

    # 3L is the memory run: the same site as L (its 20,000 linked users), so that the export is the one
    # thing that triples. The linker keeps ~170 bytes per site user (60,000: ~10 MB), paid by site size.
    users = prepare_data("L", ("xml",), with_next=False).linked if memory_only else data.linked
    xml = Stand(server, ssh, f"bench_{key}_xml", users, work)
    results.append(xml.apply(name, "first load XML", data.files["base.xml"], "settlements_20261125_100000.xml",
                             data.counts["base.xml"], profile))
    if not memory_only:
        results.append(xml.apply(name, "same again XML", data.files["base.xml"], "settlements_20261125_100000_copy.xml",
                                 data.counts["base.xml"], profile))
        results.append(xml.apply(name, "1% changed XML", data.files["next.xml"], "settlements_20261125_110000.xml",
                                 data.counts["next.xml"], profile))
    check = baseline.count_rows(xml.params)
    xml.drop(server)

    if not memory_only and not profile:
        # The same two XML steps with apply_while_downloading = true.
        streamed = Stand(server, ssh, f"bench_{key}_streamed", data.linked, work, stream=True)
        results.append(streamed.apply(name, "first load XML, applied while downloading", data.files["base.xml"],
                                      "settlements_20261125_100000.xml", data.counts["base.xml"]))
        results.append(streamed.apply(name, "1% changed XML, applied while downloading", data.files["next.xml"],
                                      "settlements_20261125_110000.xml", data.counts["next.xml"]))
        streamed.drop(server)
    if link and not memory_only and not profile:
        # Both ways again with the SFTP link at `link` Mbit/s (the first loads run at full speed).
        for stream, label in ((True, "applied while downloading"), (False, "downloaded first")):
            slow = Stand(server, ssh, f"bench_{key}_slow{int(stream)}", data.linked, work, stream=stream)
            slow.apply(name, "first load XML (for the next step)", data.files["base.xml"],
                       "settlements_20261125_100000.xml", data.counts["base.xml"])
            with slow_link(link):
                results.append(slow.apply(name, f"1% changed XML over {link} Mbit/s, {label}", data.files["next.xml"],
                                          "settlements_20261125_110000.xml", data.counts["next.xml"]))
            slow.drop(server)

    if "json" in formats:
        js = Stand(server, ssh, f"bench_{key}_json", data.linked, work)
        results.append(js.apply(name, "first load JSON", data.files["base.json"], "settlements_20261125_100000.json",
                                data.counts["base.json"]))
        results.append(js.apply(name, "1% changed JSON", data.files["next.json"], "settlements_20261125_110000.json",
                                data.counts["next.json"]))
        js.drop(server)

    if not profile:
        # The same set-up as syncd's stands, so the baseline tables have the migrated schema and indexes.
        _, params = make_site(server, f"bench_{key}_base", data.linked)
        db_before = server.cpu_seconds()
        t_load = baseline.load_data(params, data.tsv)
        db_load = _spent(server, db_before)
        loaded = baseline.count_rows(params)
        _log(f"{name} LOAD DATA: {t_load:.1f}s, {loaded} rows (syncd left {check})")
        baseline.truncate(params)
        db_before = server.cpu_seconds()
        t_many = baseline.executemany_upsert(params, data.tsv)
        db_many = _spent(server, db_before)
        _log(f"{name} executemany upsert: {t_many:.1f}s")
        server.drop_database(params["database"])
        results.append(Result(name, "LOAD DATA LOCAL", t_load, loaded, status="baseline", db_cpu=db_load))
        results.append(Result(name, "executemany upsert", t_many, loaded, status="baseline", db_cpu=db_many))
        for r in results:
            r.ratio = t_load / r.seconds if r.seconds else None
    return results


# ---------------------------------------------------------------- profile summary


# First match wins, so SQL done on behalf of the writer counts as SQL, and parsing pulled by the
# writer's batching counts as parsing. py-spy shortens some file names (hlblock.py without its package).
PHASES = (
    ("SQL: waiting for MariaDB", ("_read_bytes", "recv_into", "_read_packet")),
    ("SQL: PyMySQL client (escape rows out, convert rows in)", ("pymysql/",)),
    ("SQL: SQLAlchemy (compile, params, result rows)", ("sqlalchemy/",)),
    ("parse + validate (syncd.formats, values, validate)", ("formats/", "lxml", "ijson", "values.py", "validate.py")),
    ("diff + build rows (hlblock, rows, sql, digests)",
     ("hlblock.py", "rows.py", "<syncd rows of", "sql.py", "digests.py")),
    ("download (SFTP, paramiko)", ("paramiko/", "sources/")),
    ("sha256 of the file", ("_sha256",)),
    ("start-up (imports)", ("importlib", "<module>")),
)


def _phase(stack: str) -> str:
    for phase, marks in PHASES:
        if phase.startswith("SQL: waiting") and "pymysql/" not in stack:
            continue
        if any(m in stack for m in marks):
            return phase
    return "other (ledger, checks, idle)"


def summarize_profile(path: Path) -> str:
    """Where the main thread's wall time went, from py-spy's raw (collapsed) stacks."""
    phases: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or "MainThread" not in stack.split(";", 2)[:2].__str__():
            continue
        count = int(n)
        total += count
        phases[_phase(stack)] += count
        leaves[stack.rsplit(";", 1)[-1]] += count
    if not total:
        return f"{path}: no samples"
    lines = [f"profile {path.name} ({total} samples, main thread, wall time):"]
    lines += [f"  {share / total:6.1%}  {phase}" for phase, share in phases.most_common()]
    lines.append("  top leaf frames:")
    lines += [f"  {share / total:6.1%}  {leaf[:150]}" for leaf, share in leaves.most_common(12)]
    return "\n".join(lines)


# ---------------------------------------------------------------- output


def machine() -> str:
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1024
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    server = subprocess.run(["/usr/sbin/mariadbd", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} cores ({cpu}), {mem / 1024:.1f} GiB RAM; Python {platform.python_version()}; "
            f"MariaDB {server.split(' Ver ', 1)[-1].split()[0] if ' Ver ' in server else '?'} "
            f"(buffer pool {BUFFER_POOL}); "
            f"{datetime.now():%Y-%m-%d %H:%M}")


def _spent(server: MariaDB, before: float | None) -> float | None:
    after = server.cpu_seconds()
    return None if before is None or after is None else after - before


def table(results: list[Result]) -> str:
    head = (
        "| size | step | wall s | syncd CPU s | MariaDB CPU s | rows in file | rows/s | peak RSS MB | rows written "
        "| ledger | × LOAD DATA speed |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"
    )
    body = []
    for r in results:
        body.append(
            f"| {r.size} | {r.step} | {r.seconds:.2f} | {'' if r.cpu is None else f'{r.cpu:.1f}'} | "
            f"{'' if r.db_cpu is None else f'{r.db_cpu:.1f}'} | "
            f"{r.rows:,} | {r.rate:,.0f} | "
            f"{'' if r.rss_mb is None else f'{r.rss_mb:.0f}'} | {'' if r.written is None else f'{r.written:,}'} | "
            f"{r.status} | {'' if r.ratio is None else f'{r.ratio:.2f}'} |"
        )
    return head + "\n" + "\n".join(body)


def targets(results: list[Result]) -> str:
    """The issue's targets, as ratios within this run."""
    by = {(r.size, r.step): r for r in results}
    lines = []
    for size in dict.fromkeys(r.size for r in results):
        first = by.get((size, "first load XML"))
        load = by.get((size, "LOAD DATA LOCAL"))
        if first is None:
            continue
        parts = [f"peak RSS {first.rss_mb:.0f} MB"]
        if load is not None:
            parts.insert(0, f"first load {load.seconds / first.seconds:.2f} × LOAD DATA speed (target ≥ 0.5)")
        if first.cpu is not None and first.db_cpu is not None:
            # Both processes share the machine's cores: their CPU together, spread perfectly, is a floor.
            cores = os.cpu_count() or 1
            total = first.cpu + first.db_cpu
            floor = f"first load CPU: syncd {first.cpu:.1f} s + MariaDB {first.db_cpu:.1f} s = {total:.1f} s"
            parts.insert(1, f"{floor}, ≥ {total / cores:.1f} s wall on {cores} cores")
        for step, target in (("same again XML", "< 10%"), ("1% changed XML", "< 35%")):
            r = by.get((size, step))
            if r is not None:
                parts.append(f"{step} {r.seconds / first.seconds:.0%} of the first load (target {target})")
        live, live_next = by.get((size, "first load XML, applied while downloading")), by.get(
            (size, "1% changed XML, applied while downloading"))
        if live is not None and live_next is not None:
            parts.append(f"applied while downloading (apply_while_downloading = true): first load {live.seconds:.1f} s "
                         f"against {first.seconds:.1f} s, 1% changed {live_next.seconds / live.seconds:.0%} of it")
        slow = [r for r in results if r.size == size and " Mbit/s, " in r.step]
        if len(slow) == 2:
            parts.append(f"{slow[0].step.split(',')[0]}: {slow[0].seconds:.1f} s applied while downloading, "
                         f"{slow[1].seconds:.1f} s downloaded first")
        js = by.get((size, "first load JSON"))
        if js is not None:
            parts.append(f"JSON/XML first load {js.seconds / first.seconds:.2f} (target ≤ 1.3)")
        js_next, xml_next = by.get((size, "1% changed JSON")), by.get((size, "1% changed XML"))
        if js_next is not None and xml_next is not None:
            parts.append(f"JSON/XML 1% changed {js_next.seconds / xml_next.seconds:.2f} (target ≤ 1.3)")
        lines.append(f"- {size}: " + "; ".join(parts))
    if ("L", "first load XML") in by and ("3L", "first load XML") in by:
        rss_l, rss_3l = by[("L", "first load XML")].rss_mb, by[("3L", "first load XML")].rss_mb
        if rss_l and rss_3l:
            lines.append(f"- 3L/L peak RSS: {rss_3l / rss_l:.2f} (target < 1.2)")
    return "\n".join(lines)


def save(results: list[Result], args: list[str]) -> None:
    block = (f"{MARK_BEGIN}\nMachine: {machine()}. Command: `python -m bench {' '.join(args)}`.\n\n"
             f"{table(results)}\n\n{targets(results)}\n{MARK_END}")
    doc = ROOT / "BENCHMARKS.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\n"
    if MARK_BEGIN in text and MARK_END in text:
        pre, rest = text.split(MARK_BEGIN, 1)
        text = pre + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)


def _log(msg: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="S,M,L", help="comma-separated: S, M, L, 3L (default S,M,L)")
    ap.add_argument("--quick", action="store_true", help="S and M only")
    ap.add_argument("--profile", action="store_true", help="run syncd under py-spy and print where the time goes")
    ap.add_argument("--no-save", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    ap.add_argument("--slow-link", type=int, metavar="MBIT",
                    help="also run the 1%% changed XML step both ways over loopback limited to MBIT (tc, root)")
    raw = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(raw)
    sizes = ["S", "M"] if args.quick else [s.strip().upper() for s in args.sizes.split(",") if s.strip()]
    for s in sizes:
        if s not in SIZES:
            ap.error(f"unknown size {s!r} (choose from {', '.join(SIZES)})")
    if args.profile and not (BIN / "py-spy").exists():
        ap.error("--profile needs py-spy in the venv: .venv/bin/pip install py-spy")
    results: list[Result] = []
    with running_mariadb(buffer_pool=BUFFER_POOL) as server, running_sshd() as ssh:
        for s in sizes:
            results += bench_size(server, ssh, s, args.profile, args.slow_link)
    print(table(results))
    print(targets(results))
    if not args.no_save and not args.profile:
        save(results, raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
