"""`make soak`: an idle `syncd daemon` run many times at a short interval, its memory and handles sampled.

    .venv/bin/python -m bench.soak                       # 1,000 runs at 0.2 s
    .venv/bin/python -m bench.soak --runs 121 --interval 5s   # the issue's 10 minutes at 5 s

It starts a private MariaDB and sshd (as `make bench` does) and a site like the benchmark's:
`--counterparties` (default 10,000, the M size) with every fifth one linked to a site user, their
generated export applied once by `syncd run-once`; then the daemon as a subprocess, idle (an empty
SFTP folder), with the metrics endpoint on and scraped every 10 runs. After every run (counted in
syncd_runs) it reads, between runs, the daemon's RSS (and its anonymous part), open file
descriptors, threads and the database connections the daemon holds. It prints one line per
`--every` runs and a summary: RSS after warm-up (run `--warmup`) against the last run. The
figures are the process's own (/proc/PID/status), so they are what systemd and top show.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.baseline import linked_user
from bench.generate import Spec, iter_counterparties, write_export
from tests.ops_helpers import env, free_port, write_config
from tests.rig.mariadb import MariaDB, running_mariadb
from tests.rig.sshd import SshServer, running_sshd, set_age


@dataclass
class Sample:
    runs: int
    rss_kb: int
    anon_kb: int
    fds: int
    threads: int
    db_connections: int


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and Threads of a process, in kB (Threads: a count)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "Threads"):
            values[key] = int(rest.split()[0])
    return values


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Watch:
    """What the soak and the suite's short version read about a daemon between its runs."""

    def __init__(self, server: MariaDB, database: str, pid: int) -> None:
        self.server, self.database, self.pid = server, database, pid

    def runs(self) -> int:
        with self.server.admin() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{self.database}`.syncd_runs")
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def db_connections(self) -> int:
        """Connections to the database other than ours (the daemon's: pooled or leaked)."""
        with self.server.admin() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
                        (self.database,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def sample(self, runs: int) -> Sample:
        st = proc_status(self.pid)
        return Sample(runs, st["VmRSS"], st["RssAnon"], open_fds(self.pid), st["Threads"], self.db_connections())

    def after_run(self, n: int, timeout: float = 120) -> Sample:
        """A sample taken once run `n` is recorded and the daemon is idle again (its run thread done)."""
        deadline = time.monotonic() + timeout
        while self.runs() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not reach run {n} within {timeout}s")
            time.sleep(0.01)
        time.sleep(0.03)  # record_run is the run's last step; the report and status follow at once
        return self.sample(n)


def mb(kb: int) -> str:
    return f"{kb / 1024:.1f}"


def make_site(server: MariaDB, ssh: SshServer, tmp: Path, counterparties: int) -> tuple[str, str, Path]:
    """(database name, URL, SFTP folder) of a site whose first export is waiting in the folder."""
    from bench.__main__ import make_site as bench_site

    spec = Spec(counterparties, 10, 2, base_seed=7)
    linked = {cp.id: user for cp in iter_counterparties(spec) if (user := linked_user(cp.index)) is not None}
    url, params = bench_site(server, "soak", linked)
    folder = ssh.make_dir("soak")
    if counterparties:
        export = folder / "settlements_1.xml"
        write_export(spec, "xml", export)
        set_age(export, 600)
        os.chown(export, ssh.uid, ssh.gid)
    return str(params["database"]), url + "?charset=utf8mb4", folder


def soak(runs: int, interval: str, every: int, warmup: int, metrics: bool, counterparties: int) -> list[Sample]:
    with running_mariadb() as server, running_sshd() as ssh, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        name, url, folder = make_site(server, ssh, tmp, counterparties)
        port = free_port()
        sections: dict[str, dict[str, object]] = {
            "schedule": {"interval": interval, "misfire_grace": "1h", "run_timeout": "60s"}}
        if metrics:
            sections["metrics"] = {"listen": f"127.0.0.1:{port}"}
        config = write_config(tmp / "syncd.toml", ssh, folder, url, tmp / "state", **sections)
        first = subprocess.run([sys.executable, "-m", "syncd", "run-once", "--config", str(config)],
                               capture_output=True, text=True, env=env())
        print(f"first load: exit {first.returncode}: {first.stdout.strip()}", flush=True)
        if first.returncode != 0:
            raise SystemExit(first.stderr)
        # The daemon's runs are counted from here.
        with server.admin() as cur:
            cur.execute(f"DELETE FROM `{name}`.syncd_runs")
        log = (tmp / "daemon.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "syncd", "daemon", "--config", str(config)],
                                stdout=log, stderr=log, env=env())
        watch = Watch(server, name, proc.pid)
        samples: list[Sample] = []
        try:
            for n in range(1, runs + 1):
                s = watch.after_run(n)
                samples.append(s)
                if metrics and n % 10 == 0:  # Prometheus scrapes it meanwhile
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
                if n == 1 or n % every == 0 or n == runs:
                    print(f"run {n:5d}: RSS {mb(s.rss_kb)} MB (anon {mb(s.anon_kb)}), fds {s.fds}, "
                          f"threads {s.threads}, db connections {s.db_connections}", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
            text = (tmp / "daemon.log").read_text(errors="replace")
            if "Traceback" in text:
                print(text[-5000:], file=sys.stderr)
        summarize(samples, warmup)
        return samples


def summarize(samples: list[Sample], warmup: int) -> None:
    """RSS at run 1, at the end of the warm-up and at the end; a figure is the median of the samples
    within 5 runs of it (one sample may land in a run)."""

    def around(n: int) -> tuple[float, float]:
        near = [s for s in samples if abs(s.runs - n) <= 5]
        return statistics.median(s.rss_kb for s in near), statistics.median(s.anon_kb for s in near)

    last = samples[-1].runs
    first = samples[0]
    warm_rss, warm_anon = around(min(warmup, last))
    end_rss, end_anon = around(last)
    print(f"RSS run 1 {first.rss_kb / 1024:.1f} MB, run {warmup} {warm_rss / 1024:.1f} MB, "
          f"run {last} {end_rss / 1024:.1f} MB: {100 * (end_rss / warm_rss - 1):+.1f}% after warm-up, "
          f"{100 * (end_rss / first.rss_kb - 1):+.1f}% from run 1")
    print(f"anonymous: {first.anon_kb / 1024:.1f} -> {warm_anon / 1024:.1f} -> {end_anon / 1024:.1f} MB "
          f"({100 * (end_anon / warm_anon - 1):+.1f}% after warm-up, {100 * (end_anon / first.anon_kb - 1):+.1f}% "
          "from run 1)")
    print(f"fds {samples[0].fds} -> {samples[-1].fds}, threads {samples[0].threads} -> {samples[-1].threads}, "
          f"db connections between runs: max {max(s.db_connections for s in samples)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--interval", default="200ms", help="schedule.interval (default 200ms)")
    ap.add_argument("--every", type=int, default=50, help="print a line every N runs")
    ap.add_argument("--warmup", type=int, default=100, help="the run whose RSS the end is compared with")
    ap.add_argument("--no-metrics", action="store_true", help="without the metrics endpoint")
    ap.add_argument("--counterparties", type=int, default=10_000,
                    help="the site's size: its first export, applied before the daemon starts (0: an empty site)")
    args = ap.parse_args(argv)
    soak(args.runs, args.interval, args.every, args.warmup, not args.no_metrics, args.counterparties)
    return 0


if __name__ == "__main__":
    sys.exit(main())
