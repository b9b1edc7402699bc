"""`make bench` (freshness): how soon after 1C's marker a `syncd daemon` in watch mode has the rows committed.

    .venv/bin/python -m bench.freshness                       # 20 M-size exports over 20 minutes, watch 60s
    .venv/bin/python -m bench.freshness --exports 5 --span 300 --idle 120   # a quick look

It starts a private MariaDB and sshd (as `make bench` does) and a site of the M size (10,000
counterparties, every fifth linked to a site user), first loaded by `syncd run-once`. Then the daemon
runs as a subprocess with `require_marker = true`, `min_age = "0s"`, `watch = 60s` (`--watch`) and the
default 30-minute interval, and `--exports` exports are dropped on the SFTP server at random moments
within `--span` seconds, as 1C does it: written under `NAME.tmp`, renamed, then `NAME.done`. Each is
an M-size export with 1% of its counterparties changed from the one before (new export id, later
generatedAt). Latency is from the moment the marker is there to the moment the file's ledger row
(committed with its rows, in the same transaction) is visible to another database session, polled
every 0.25 s.

Idle cost: after the last file, the daemon's own CPU (utime + stime from /proc/PID/stat) over
`--idle` seconds of nothing arriving (the watch's listings only), scaled to an hour; plus the two
scheduled runs an hour brings at the 30-minute interval, each measured as a `syncd run-once` on the
empty folder (a whole process with its interpreter start: an upper bound). SFTP requests per listing
are counted on the wire by paramiko (request numbers), on a listing of the same folder.

The figures are printed and written into BENCHMARKS.md between the freshness markers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench.__main__ import OUT, ROOT, make_site
from bench.baseline import linked_user
from bench.generate import GENERATED_AT, Spec, iter_counterparties, write_export
from tests.ops_helpers import env
from tests.rig.ftpd import PASSWORD as FTP_PASSWORD
from tests.rig.ftpd import FtpServer, running_ftpd
from tests.rig.mariadb import MariaDB, running_mariadb
from tests.rig.sshd import SshServer, running_sshd
from tests.rig.tlscerts import make_certs

SEED = 20261125
COUNTERPARTIES = 10_000  # the M size
MARK_BEGIN = "<!-- freshness:begin -->"
MARK_END = "<!-- freshness:end -->"
TICKS = os.sysconf("SC_CLK_TCK")
HEADER = re.compile(rb'exportId="[^"]*" generatedAt="[^"]*"')


@dataclass
class Figures:
    latencies: list[float]
    idle_seconds: float
    idle_cpu: float  # CPU seconds of the daemon over idle_seconds
    idle_listings: int
    run_cpu: float  # CPU seconds of one idle scheduled run (a run-once process)
    requests_per_listing: int | None
    watch: float
    interval: float
    exports: int
    span: float


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def templates() -> list[bytes]:
    """Two M-size exports, the second with 1% of counterparties changed: dropped in turn, each is 1% new."""
    d = OUT / "data" / f"M-{SEED}"
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, spec in (("base.xml", Spec(COUNTERPARTIES, 10, 2, SEED)),
                       ("next.xml", Spec(COUNTERPARTIES, 10, 2, SEED, changed=0.01))):
        path = d / name
        if not path.exists():
            write_export(spec, "xml", path.with_suffix(".tmp"))
            path.with_suffix(".tmp").rename(path)
        out.append(path.read_bytes())
    return out


def export_bytes(template: bytes, n: int) -> bytes:
    at = (GENERATED_AT + timedelta(hours=2, minutes=n)).strftime("%Y-%m-%dT%H:%M:%S")
    header = f'exportId="{uuid.uuid4()}" generatedAt="{at}"'.encode()
    return HEADER.sub(header, template, count=1)


FTP_PASSWORD_ENV = "SYNCD_FTP_PASSWORD"


def put_as_1c(owner: tuple[int, int] | None, folder: Path, name: str, data: bytes) -> float:
    """NAME.tmp written, renamed to NAME, then NAME.done: the moment the marker is there. `owner`: the
    SFTP user's (uid, gid), so its server can move the files; None for the FTP server (it runs as us)."""
    tmp = folder / f"{name}.tmp"
    tmp.write_bytes(data)
    if owner is not None:
        os.chown(tmp, *owner)
    tmp.rename(folder / name)
    marker = folder / f"{name}.done"
    marker.write_bytes(b"")
    if owner is not None:
        os.chown(marker, *owner)
    return time.time()


def sftp_source(ssh: SshServer, folder: Path) -> str:
    return ('type = "sftp"\n'
            f'host = "{ssh.host}"\nport = {ssh.port}\nusername = "{ssh.username}"\n'
            f'private_key = "{ssh.client_key}"\nknown_hosts = "{ssh.known_hosts}"\n'
            f'remote_dir = "{folder}"\n')


def ftp_source(ftp: FtpServer, ca: Path) -> str:
    """Explicit FTPS, as 1C's FTPСоединение uploads with a secure connection."""
    return ('type = "ftp"\ntls = "explicit"\n'
            f'host = "{ftp.host}"\nport = {ftp.port}\nusername = "{ftp.username}"\n'
            f'password_env = "{FTP_PASSWORD_ENV}"\nca_file = "{ca}"\nremote_dir = "."\n')


def write_config(path: Path, source: str, url: str, state: Path, watch: str) -> Path:
    path.write_text(
        '[source]\n' + source +
        'pattern = "settlements_*"\n'
        'require_marker = true\nmin_age = "0s"\n'
        'on_success = "move:processed"\non_failure = "move:failed"\ntimezone = "Europe/Moscow"\n'
        f'\n[database]\nurl = "{url}"\n'
        '\n[bitrix]\ntimezone = "Europe/Moscow"\n'
        f'\n[state]\ndir = "{state}"\nkeep_applied = 1\n'
        f'\n[schedule]\ninterval = "30m"\nwatch = "{watch}"\nrun_timeout = "20m"\n'
    )
    return path


class Committed:
    """Polls syncd_imports from its own session: when each file's applied row became visible."""

    def __init__(self, server: MariaDB, database: str) -> None:
        self.server, self.database = server, database
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.25):
            with self.server.admin() as cur:
                cur.execute(f"SELECT file_name FROM `{self.database}`.syncd_imports WHERE status = 'applied'")
                rows = cur.fetchall()
            now = time.time()
            for (name,) in rows:
                self.seen.setdefault(name, now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_env() -> dict[str, str]:
    return env(**{FTP_PASSWORD_ENV: FTP_PASSWORD})


def run_once(config: Path) -> tuple[int, float]:
    """(exit code, CPU seconds) of `syncd run-once`."""
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "run-once", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=run_env())
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def requests_per_listing(config: Path) -> int | None:
    """SFTP requests per listing; None for FTP (one LIST/MLSD command and its data connection)."""
    from syncd import config as config_mod
    if config_mod.load(config).source.type != "sftp":
        return None
    from syncd.sources.sftp import SftpSource

    with SftpSource(config_mod.load(config).source) as source:
        sftp = source._sftp
        assert sftp is not None
        source.list()
        before = sftp.request_number
        source.list()
        return int(sftp.request_number - before)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def measure(exports: int, span: float, watch: str, idle: float, seed: int, kind: str = "sftp") -> Figures:
    from syncd.config import parse_duration

    base, nxt = templates()
    with running_mariadb() as server, contextlib.ExitStack() as stack, \
            tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        spec = Spec(COUNTERPARTIES, 10, 2, SEED)
        linked = {cp.id: u for cp in iter_counterparties(spec) if (u := linked_user(cp.index)) is not None}
        url, params = make_site(server, "fresh", linked)
        owner: tuple[int, int] | None = None
        if kind == "ftp":
            certs = make_certs(tmp / "certs")
            ftp = stack.enter_context(running_ftpd(tmp / "ftp-root", "explicit", cert=certs.server))
            folder, source = ftp.root, ftp_source(ftp, certs.ca)
        else:
            ssh = stack.enter_context(running_sshd())
            folder, owner = ssh.make_dir("fresh"), (ssh.uid, ssh.gid)
            source = sftp_source(ssh, folder)
        config = write_config(tmp / "syncd.toml", source, url + "?charset=utf8mb4", tmp / "state", watch)
        put_as_1c(owner, folder, "settlements_0000.xml", export_bytes(base, 0))
        code, _ = run_once(config)
        _log(f"first load (run-once): exit {code}")
        if code != 0:
            raise SystemExit("the first load failed")
        database = str(params["database"])
        committed = Committed(server, database)
        log_path = tmp / "daemon.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "syncd", "daemon", "--config", str(config)],
                                    stdout=log, stderr=log, env=run_env())
        try:
            time.sleep(5)  # its start run: nothing there
            rng = random.Random(seed)
            moments = sorted(rng.uniform(0, span) for _ in range(exports))
            marked: dict[str, float] = {}
            t0 = time.monotonic()
            for i, at in enumerate(moments, start=1):
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                name = f"settlements_{i:04d}.xml"
                marked[name] = put_as_1c(owner, folder, name, export_bytes(nxt if i % 2 else base, i))
                _log(f"dropped {name} at +{at:.0f}s")
            deadline = time.monotonic() + 600
            while len(set(marked) & set(committed.seen)) < len(marked):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"not all applied: {sorted(set(marked) - set(committed.seen))}\n"
                                     + log_path.read_text(errors="replace")[-4000:])
                time.sleep(0.5)
            committed.stop()
            latencies = [committed.seen[n] - t for n, t in marked.items()]
            _log(f"all {exports} applied; idle for {idle:.0f}s")
            time.sleep(3)
            listed_before = log_path.read_text(errors="replace").count("watch:")
            cpu0, w0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(idle)
            cpu1, w1 = cpu_seconds(proc.pid), time.monotonic()
            text = log_path.read_text(errors="replace")
            if text.count("watch:") != listed_before or text.count("run finished") > exports + 1:
                _log("note: the daemon logged during the idle window (see its log)")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        if "Traceback" in log_path.read_text(errors="replace"):
            print(log_path.read_text(errors="replace")[-5000:], file=sys.stderr)
        code, run_cpu = run_once(config)
        every = parse_duration(watch).total_seconds()
        return Figures(latencies=latencies, idle_seconds=w1 - w0, idle_cpu=cpu1 - cpu0,
                       idle_listings=int((w1 - w0) // every), run_cpu=run_cpu,
                       requests_per_listing=requests_per_listing(config), watch=every, interval=1800,
                       exports=exports, span=span)


def report(f: Figures) -> str:
    lat = sorted(f.latencies)
    p95 = lat[min(len(lat) - 1, max(0, round(0.95 * len(lat)) - 1))]
    watch_cpu_hour = f.idle_cpu / f.idle_seconds * 3600
    runs_hour = 3600 / f.interval
    hour_cpu = watch_cpu_hour + runs_hour * f.run_cpu
    listings_hour = 3600 / f.watch
    lines = [
        f"{f.exports} M-size exports (10,000 counterparties, 1% changed each) dropped at random moments within "
        f"{f.span:.0f} s; `watch = {f.watch:g}s`, `require_marker = true`, `min_age = 0s`.",
        "",
        "| marker → rows committed | p50 | p95 | max | min |",
        "|---|---|---|---|---|",
        f"| seconds | {statistics.median(lat):.1f} | {p95:.1f} | {lat[-1]:.1f} | {lat[0]:.1f} |",
        "",
        "| idle daemon | per hour |",
        "|---|---|",
        f"| CPU of the watch alone ({f.idle_seconds:.0f} s measured, {f.idle_listings} listings) "
        f"| {watch_cpu_hour:.2f} s "
        f"({100 * watch_cpu_hour / 3600:.3f}% of one core) |",
        f"| + {runs_hour:g} scheduled runs at the 30 min interval ({f.run_cpu:.2f} s each as a whole "
        f"`run-once` process) | {hour_cpu:.2f} s ({100 * hour_cpu / 3600:.3f}% of one core) |",
        (f"| source listings (one SFTP session kept open) | {listings_hour:g}, {f.requests_per_listing} SFTP "
         f"requests each: {listings_hour * f.requests_per_listing:g} requests |"
         if f.requests_per_listing is not None else
         f"| source listings (one FTPS control connection kept open) | {listings_hour:g}, one listing command "
         "and its data connection each |"),
        f"| new source sessions | {runs_hour:g} (one per scheduled run) + 0 for the watch |",
    ]
    return "\n".join(lines)


def save(text: str, args: list[str]) -> None:
    path = ROOT / "BENCHMARKS.md"
    body = path.read_text(encoding="utf-8")
    command = " ".join(["python -m bench.freshness", *args])
    block = f"{MARK_BEGIN}\n`{command}`\n\n{text}\n{MARK_END}"
    if MARK_BEGIN in body:
        body = re.sub(re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), lambda _: block, body, flags=re.S)
    else:
        body = body.rstrip("\n") + "\n\n## Freshness (watch mode)\n\n" + block + "\n"
    path.write_text(body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.freshness", description=__doc__.split("\n")[0])
    ap.add_argument("--exports", type=int, default=20)
    ap.add_argument("--span", type=float, default=1200, help="seconds within which the exports arrive")
    ap.add_argument("--watch", default="60s", help="schedule.watch (default 60s)")
    ap.add_argument("--idle", type=float, default=600, help="seconds of idle daemon measured")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--source", choices=("sftp", "ftp"), default="sftp",
                    help="where 1C drops the exports: the SFTP rig, or an explicit-FTPS server (pyftpdlib)")
    ap.add_argument("--no-save", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    text = report(measure(args.exports, args.span, args.watch, args.idle, args.seed, args.source))
    print(text)
    if not args.no_save:
        save(text, sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
