"""A private OpenSSH sshd on 127.0.0.1 and a free port, for the SFTP tests and the benchmark.

It needs root: sshd must switch to the login user, and the rig creates that user (once) and
owns its home. The client side gets a fresh ed25519 key and a known_hosts file naming the
server's host key, exactly what an admin configures for syncd.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.rig.mariadb import free_port

SSHD = Path("/usr/sbin/sshd")
USER = "syncd-test"
USER_HOME = Path("/var/lib/syncd-test")
PASSWORD_LOCK = Path("/run/syncd-test-password.lock")


class RigUnavailable(RuntimeError):
    """The machine cannot run the private sshd; the message says what is missing."""


def check_can_run() -> None:
    if os.geteuid() != 0:
        raise RigUnavailable(
            "the SFTP tests start a private sshd and log in as a dedicated user, which needs root: "
            "run the suite as root (as CI does), e.g. in the dev container"
        )
    for tool in (str(SSHD), "ssh-keygen", "useradd", "usermod"):
        if not shutil.which(tool):
            raise RigUnavailable(f"{tool} not found: apt-get install openssh-server openssh-client passwd")


def ensure_user(name: str = USER, home: Path = USER_HOME) -> pwd.struct_passwd:
    """Create the login user if missing; idempotent, so parallel or repeated sessions share it."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--create-home", "--home-dir", str(home), "--shell", "/usr/sbin/nologin", name],
            capture_output=True, text=True,
        )
        # Exit 9: another session created it between our check and useradd.
        if result.returncode not in (0, 9):
            raise RigUnavailable(f"useradd {name} failed: {result.stderr.strip()}") from None
        pw = pwd.getpwnam(name)
    # sshd without PAM refuses a locked account ('!'); '*' only disables password login. A real
    # password is left alone while a password server (of a parallel session) holds the lock, and
    # removed otherwise: a session killed mid-test leaves it behind.
    with PASSWORD_LOCK.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            in_use = False
        except BlockingIOError:
            in_use = True
        field_ = _shadow_field(name)
        if field_ != "*" and (field_.startswith("!") or not in_use):
            subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
    Path(pw.pw_dir).mkdir(parents=True, exist_ok=True)
    os.chown(pw.pw_dir, pw.pw_uid, pw.pw_gid)
    return pw


def _shadow_field(name: str) -> str:
    for line in Path("/etc/shadow").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields[1]
    return ""


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an flock on `path`: mutual exclusion between test sessions on this machine."""
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def keygen(path: Path, comment: str) -> str:
    """Write an ed25519 key pair at `path` (+ .pub); return the public line `ssh-ed25519 AAAA… comment`."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, capture_output=True,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


@dataclass
class SshServer:
    host: str
    port: int
    username: str
    uid: int
    gid: int
    client_key: Path  # private key file, accepted by the server
    known_hosts: Path  # holds the server's real host key
    home: Path  # the login directory; SFTP relative paths start here
    password: str | None  # set only for a server started with password=True
    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path
    made: list[Path] = field(default_factory=list)  # folders from make_dir, removed with the server

    @property
    def host_key_name(self) -> str:
        return f"[{self.host}]:{self.port}"

    # ---------------------------------------------------------------- files for the tests

    def make_dir(self, prefix: str = "t") -> Path:
        """A new empty directory in the user's home, owned by the user (the server may move/delete in it)."""
        d = self.home / f"{prefix}-{os.getpid()}-{len(self.made) + 1}-{uuid.uuid4().hex[:6]}"
        d.mkdir(mode=0o755)
        os.chown(d, self.uid, self.gid)
        self.made.append(d)
        return d

    def make_dirs(self, path: Path) -> Path:
        """mkdir -p, the new folders owned by the login user as if it had made them."""
        missing: list[Path] = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir()
            os.chown(d, self.uid, self.gid)
        return path

    def put(self, path: Path, data: bytes | str = b"", *, age: float | None = 3600.0, owner: bool = True) -> Path:
        """Write a file as 1C would; `age` seconds old (None: now), owned by the login user."""
        self.make_dirs(path.parent)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        if age is not None:
            set_age(path, age)
        if owner:
            os.chown(path, self.uid, self.gid)
        return path

    def wrong_known_hosts(self, where: Path) -> Path:
        """A known_hosts file for this host:port with some other ed25519 key (a 'changed' host key)."""
        line = keygen(where.with_name(where.name + ".key"), "other-host")
        kind, blob = line.split()[:2]
        where.write_text(f"{self.host_key_name} {kind} {blob}\n")
        return where

    def empty_known_hosts(self, where: Path) -> Path:
        """A known_hosts that lacks this server (an 'unknown' host key); it knows another host."""
        line = keygen(where.with_name(where.name + ".key"), "unrelated")
        kind, blob = line.split()[:2]
        where.write_text(f"[127.0.0.2]:{self.port} {kind} {blob}\n")
        return where

    # ---------------------------------------------------------------- failure injection

    def session_pids(self) -> list[int]:
        """The per-connection sshd processes (children of the listener; they run in their own session)."""
        return descendants(self.process.pid)

    def kill(self) -> None:
        """The server dies: the listener and every open connection, as on a crash or reboot."""
        pids = self.session_pids()
        self.process.kill()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Open connections stop answering but stay open (a hung server or a black-holed link)."""
        pids = self.session_pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 is the parent pid; the command name (field 2) may contain spaces and parentheses.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
        found.extend(frontier)
    return found


def set_age(path: Path, age: float) -> None:
    t = time.time() - age
    os.utime(path, (t, t))


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with socket.socket() as s:
            s.settimeout(1)
            try:
                s.connect(("127.0.0.1", port))
                return
            except OSError:
                time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on {port} within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def running_sshd(*, password: bool = False, sftp_flags: str = "") -> Iterator[SshServer]:
    """Yield a started sshd; stopped and its files deleted afterwards.

    sftp_flags go to its internal-sftp (sftp-server(8) options), e.g. "-P limits" to refuse an extension.

    password=True also enables password login and sets a random password on the test user for
    the server's lifetime (reset to '*' afterwards); the password is in `SshServer.password`.
    """
    check_can_run()
    pw = ensure_user()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    tmp = Path(tempfile.mkdtemp(prefix="syncd-sshd-"))
    # sshd reads AuthorizedKeysFile as the login user, so the directory must be traversable.
    tmp.chmod(0o755)
    secret: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    server: SshServer | None = None
    stack = contextlib.ExitStack()
    try:
        keygen(tmp / "host_ed25519", "syncd-test-host")
        client_pub = keygen(tmp / "client_ed25519", "syncd-test-client")
        authorized = tmp / "authorized_keys"
        authorized.write_text(client_pub + "\n")
        authorized.chmod(0o644)
        if password:
            # The password lives in /etc/shadow, shared by every test session on the machine: one
            # password server at a time, or a second session would change it under the first.
            stack.enter_context(_exclusive(PASSWORD_LOCK))
            secret = secrets.token_urlsafe(18)
            subprocess.run(["chpasswd"], input=f"{pw.pw_name}:{secret}\n", text=True, check=True, capture_output=True)
        log = tmp / "sshd.log"
        for attempt in range(3):
            port = free_port()
            config = tmp / "sshd_config"
            config.write_text(
                f"ListenAddress 127.0.0.1\n"
                f"Port {port}\n"
                f"HostKey {tmp / 'host_ed25519'}\n"
                f"PidFile {tmp / 'sshd.pid'}\n"
                f"AuthorizedKeysFile {authorized}\n"
                f"PasswordAuthentication {'yes' if password else 'no'}\n"
                "KbdInteractiveAuthentication no\n"
                "UsePAM no\n"
                "StrictModes no\n"
                f"AllowUsers {pw.pw_name}\n"
                f"Subsystem sftp internal-sftp {sftp_flags}\n"
                "LogLevel VERBOSE\n"
            )
            with log.open("ab") as out:
                proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=out, stderr=out)
            try:
                _wait_listening(port, proc, log)
                break
            except RuntimeError:
                # free_port() races with other processes: another attempt gets another port.
                if attempt == 2 or proc.poll() is None or "Address already in use" not in log.read_text():
                    raise
        assert proc is not None
        host_pub = (tmp / "host_ed25519.pub").read_text().split()
        known_hosts = tmp / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        server = SshServer(
            host="127.0.0.1",
            port=port,
            username=pw.pw_name,
            uid=pw.pw_uid,
            gid=pw.pw_gid,
            client_key=tmp / "client_ed25519",
            known_hosts=known_hosts,
            home=Path(pw.pw_dir),
            password=secret,
            process=proc,
            workdir=tmp,
            log=log,
        )
        yield server
    finally:
        # Connections a test left open outlive the listener unless they are stopped too.
        leftovers = descendants(proc.pid) if proc is not None and proc.poll() is None else []
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if secret is not None:
            subprocess.run(["usermod", "-p", "*", pw.pw_name], check=False, capture_output=True)
        stack.close()
        if server is not None:
            for d in server.made:
                shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
