"""Download methods side by side against the rig's sshd: wall time, MB/s and peak RSS of each.

    .venv/bin/python -m bench.sftp_download --size-mb 300
    .venv/bin/python -m bench.sftp_download --size-mb 100,300 --requests 32,128

Methods: (a) `old`, paramiko's get() with max_concurrent_prefetch_requests=64 (syncd before the
pipelined loop); (b) `plain`, get() with no limit; (c) `new-32k`, SftpSource.fetch with 32 KiB
reads over paramiko's default 32 KiB packets (syncd before it asked the server for its read limit);
(d) `new`, SftpSource.fetch as it is. Each download runs in a fresh child process (this script
re-run with --child), so the peak RSS that os.wait4 reports is that method's alone. `--requests`
adds a `new` row per REQUESTS value (reads in flight).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import paramiko

from syncd.config import SourceConfig
from syncd.sources import sftp as sftp_module
from tests.rig.sshd import running_sshd, set_age

METHODS = ("old", "plain", "new-32k", "new")


def config(server: dict[str, str]) -> SourceConfig:
    """The source for the server described by `server` (as passed to a child: plain strings)."""
    return SourceConfig(
        type="sftp",
        timezone=ZoneInfo("UTC"),
        host=server["host"],
        port=int(server["port"]),
        username=server["username"],
        private_key=Path(server["private_key"]),
        known_hosts=Path(server["known_hosts"]),
        remote_dir=server["remote_dir"],
        connect_timeout=timedelta(seconds=10),
        io_timeout=timedelta(seconds=30),
    )


def child(args: argparse.Namespace) -> None:
    """Download once with one method; print the seconds the download itself took."""
    cfg = config(json.loads(args.child))
    dest = Path(args.dest)
    if args.requests_in_flight:
        sftp_module.REQUESTS = args.requests_in_flight
    if args.method == "new-32k":
        sftp_module.read_size = lambda sftp: sftp_module.CHUNK
        sftp_module.PACKET = paramiko.common.DEFAULT_MAX_PACKET_SIZE
        sftp_module.WINDOW = paramiko.common.DEFAULT_WINDOW_SIZE
    with sftp_module.SftpSource(cfg) as src:
        (file,) = src.list().ready
        started = time.monotonic()
        if args.method.startswith("new"):
            src.fetch(file, dest)
        else:
            limit = 64 if args.method == "old" else None
            sftp = src._conn
            sftp.get(
                f"{cfg.remote_dir}/{file.name}", str(dest), max_concurrent_prefetch_requests=limit
            )
        took = time.monotonic() - started
    assert dest.stat().st_size == file.size
    print(took)


def run(server: dict[str, str], method: str, dest: Path, requests: int | None) -> tuple[float, float]:
    """(download seconds, peak RSS MB) of one download in a fresh child process."""
    cmd = [sys.executable, "-m", "bench.sftp_download", "--child", json.dumps(server), "--method", method,
           "--dest", str(dest)]
    if requests:
        cmd += ["--requests-in-flight", str(requests)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{method} failed (exit {proc.returncode})")
    dest.unlink()
    return float(out.decode().strip()), usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def write_file(path: Path, size: int) -> None:
    """Random-ish bytes (a random MiB repeated with a varying prefix): not sparse, not all zeros."""
    block = os.urandom(1024 * 1024)
    with path.open("wb") as out:
        for i in range(size // len(block)):
            out.write(i.to_bytes(8, "little") + block[8:])
        out.write(block[: size % len(block)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mb", default="300", help="file sizes in MB, comma-separated (default 300)")
    p.add_argument("--requests", default="", help="extra `new` rows with these REQUESTS values, e.g. 32,128")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--dest", help=argparse.SUPPRESS)
    p.add_argument("--requests-in-flight", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    runs: list[tuple[str, int | None]] = [(m, None) for m in args.methods.split(",")]
    runs += [("new", int(r)) for r in args.requests.split(",") if r]
    print(f"paramiko {paramiko.__version__}, REQUESTS={sftp_module.REQUESTS}, IN_FLIGHT="
          f"{sftp_module.IN_FLIGHT >> 20} MiB, reads of {sftp_module.MAX_CHUNK // 1024} KiB where the server "
          f"announces them, else {sftp_module.CHUNK // 1024} KiB", flush=True)
    print(f"{'size MB':>8} {'method':<14} {'wall s':>7} {'MB/s':>7} {'peak RSS MB':>12}", flush=True)
    with running_sshd() as server, tempfile.TemporaryDirectory(prefix="sftp-bench-") as local:
        for mb in (int(x) for x in args.size_mb.split(",")):
            folder = server.make_dir("bench")
            try:
                size = mb * 1000 * 1000
                path = folder / "settlements_1.xml"
                # Written in pieces rather than with server.put(), which needs the whole file in memory;
                # then owned by the login user and an hour old, as put() leaves it.
                write_file(path, size)
                os.chown(path, server.uid, server.gid)
                set_age(path, 3600)
                described = {
                    "host": server.host, "port": str(server.port), "username": server.username,
                    "private_key": str(server.client_key), "known_hosts": str(server.known_hosts),
                    "remote_dir": str(folder),
                }
                for method, requests in runs:
                    secs, rss = run(described, method, Path(local) / "download", requests)
                    label = method if requests is None else f"new R={requests}"
                    print(f"{mb:>8} {label:<14} {secs:>7.1f} {size / 1e6 / secs:>7.1f} {rss:>12.0f}", flush=True)
            finally:
                shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
