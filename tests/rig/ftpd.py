"""A private FTP server (pyftpdlib) on 127.0.0.1 and a free port, for the FTP source's tests.

It runs in a process of its own (`python -m tests.rig.ftpd …`), so a test can kill it in the middle
of a download. Modes: plain FTP, explicit FTPS (AUTH TLS) and implicit FTPS (TLS from the first
byte), with a certificate from tests.rig.tlscerts; `mlsd=False` answers MLSD with `500 Unknown
command`, as vsftpd does, so the NLST + SIZE + MDTM path is tested too; `rate` throttles downloads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.rig.mariadb import free_port

USER = "onec"
PASSWORD = "s3cret-ftp-Пароль"


@dataclass
class FtpServer:
    host: str
    port: int
    root: Path
    mode: str
    proc: subprocess.Popen[bytes]
    username: str = USER
    password: str = PASSWORD

    def put(self, name: str, data: str | bytes, *, age: float = 3600) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        t = time.time() - age
        os.utime(path, (t, t))
        return path

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else b""
            raise RuntimeError(f"the test FTP server exited with {proc.returncode}: {err!r}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError("the test FTP server did not start listening within 15 s")


@contextlib.contextmanager
def running_ftpd(root: Path, mode: str = "plain", *, cert: Path | None = None, mlsd: bool = True,
                 rate: int = 0) -> Iterator[FtpServer]:
    """mode: plain | explicit | implicit. `cert`: PEM with the key (tls modes). `rate`: bytes/s per download."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tests.rig.ftpd", "--root", str(root), "--port", str(port), "--mode", mode,
           "--rate", str(rate)]
    if cert is not None:
        cmd += ["--cert", str(cert)]
    if not mlsd:
        cmd.append("--no-mlsd")
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _wait_listening(port, proc)
        yield FtpServer("127.0.0.1", port, root, mode, proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def _serve(args: argparse.Namespace) -> None:  # pragma: no cover - runs in the server process
    import logging

    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler, TLS_FTPHandler
    from pyftpdlib.servers import FTPServer

    logging.basicConfig(level=logging.WARNING)
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, args.root, perm="elradfmwMT")
    base: type[FTPHandler] = FTPHandler if args.mode == "plain" else TLS_FTPHandler
    attrs: dict[str, object] = {"authorizer": authorizer, "passive_ports": None, "permit_foreign_addresses": False}
    if args.mode != "plain":
        attrs |= {"certfile": args.cert, "tls_control_required": True, "tls_data_required": True}
    if not args.mlsd:
        attrs["proto_cmds"] = {k: v for k, v in base.proto_cmds.items() if k not in ("MLSD", "MLST")}
    if args.rate and args.mode == "plain":
        dtp = type("Slow", (ThrottledDTPHandler,), {"write_limit": args.rate})
        attrs["dtp_handler"] = dtp
    if args.mode == "implicit":
        def handle(self: TLS_FTPHandler) -> None:
            self.secure_connection(self.ssl_context)  # TLS before the banner: implicit FTPS
            TLS_FTPHandler.handle(self)
        attrs["handle"] = handle
    handler = type("Handler", (base,), attrs)
    server = FTPServer(("127.0.0.1", args.port), handler)
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["plain", "explicit", "implicit"], default="plain")
    parser.add_argument("--cert")
    parser.add_argument("--no-mlsd", dest="mlsd", action="store_false")
    parser.add_argument("--rate", type=int, default=0)
    _serve(parser.parse_args())


VSFTPD = Path("/usr/sbin/vsftpd")


@contextlib.contextmanager
def running_vsftpd(workdir: Path, cert: Path, key: Path) -> Iterator[FtpServer]:
    """Debian's vsftpd with explicit FTPS and its default `require_ssl_reuse=YES` (the server 1C sites
    run most): anonymous login (password: any), exports in `<root>/exports`, which `root` points at.
    Needs root (vsftpd drops to the `ftp` user) and `apt-get install vsftpd` (make system-deps)."""
    import pwd

    if not VSFTPD.exists() or os.geteuid() != 0:
        raise RuntimeError("the vsftpd test needs root and /usr/sbin/vsftpd: apt-get install vsftpd "
                           "(make system-deps)")
    ftp_user = pwd.getpwnam("ftp")
    top, empty = workdir / "vsftpd-root", workdir / "vsftpd-empty"
    exports = top / "exports"
    for d in (top, empty, exports):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
    # Anonymous users write as `ftp`; vsftpd refuses a writable root.
    os.chown(exports, ftp_user.pw_uid, ftp_user.pw_gid)
    port = free_port()
    low = free_port()
    conf = workdir / "vsftpd.conf"
    conf.write_text("\n".join([
        "listen=YES", "listen_address=127.0.0.1", f"listen_port={port}", "background=NO",
        "anonymous_enable=YES", "local_enable=NO", f"anon_root={top}", "write_enable=YES",
        "anon_upload_enable=YES", "anon_mkdir_write_enable=YES", "anon_other_write_enable=YES", "anon_umask=022",
        "ssl_enable=YES", "allow_anon_ssl=YES", "force_anon_logins_ssl=YES", "force_anon_data_ssl=YES",
        f"rsa_cert_file={cert}", f"rsa_private_key_file={key}", "require_ssl_reuse=YES",
        f"pasv_min_port={low}", f"pasv_max_port={low + 20}", f"secure_chroot_dir={empty}",
        "seccomp_sandbox=NO", "xferlog_enable=NO", "",
    ]))
    proc = subprocess.Popen([str(VSFTPD), str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, proc)
        yield FtpServer("127.0.0.1", port, exports, "explicit", proc, username="anonymous",
                        password="syncd@example.com")
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
