"""A private MariaDB that a test may stop, crash and start again: the same datadir, port and settings.

The suite's shared server (tests/rig/mariadb.py) must never go down under other tests; the fault
tests take down this one instead. Its settings are those of `running_mariadb`, so crash recovery
and timings are the same as on the shared server.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.rig.mariadb import MariaDB, _wait_ready, free_port


class OwnMariaDB:
    def __init__(self, tmp: Path) -> None:
        mysqld = shutil.which("mariadbd", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))
        install = shutil.which("mariadb-install-db")
        if not mysqld or not install:
            raise RuntimeError("MariaDB binaries not found: apt-get install mariadb-server")
        self.tmp = tmp
        self.data = tmp / "data"
        self.log = tmp / "error.log"
        self.port = free_port()
        self._user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [install, "--no-defaults", f"--datadir={self.data}", *self._user,
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self._argv = [
            mysqld, "--no-defaults", f"--datadir={self.data}", *self._user, f"--port={self.port}",
            "--bind-address=127.0.0.1", f"--socket={tmp / 'mysqld.sock'}", f"--pid-file={tmp / 'mysqld.pid'}",
            f"--log-error={self.log}", "--skip-log-bin", "--innodb-buffer-pool-size=128M",
            "--innodb-log-file-size=256M", "--innodb-flush-log-at-trx-commit=2", "--innodb-flush-method=nosync",
            "--innodb-doublewrite=0", "--max-allowed-packet=64M",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.server = MariaDB(make_url(f"mysql+pymysql://root:@127.0.0.1:{self.port}/"), itertools.count())

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_ready(self.port, self.proc, self.log)
        self.server.pid = self.proc.pid

    def stop(self) -> None:
        """A clean shutdown (systemctl stop mariadb): SIGTERM, connections killed, then exit."""
        self._signal(signal.SIGTERM)

    def crash(self) -> None:
        """The server process dies at once (OOM killer, a crash): SIGKILL; InnoDB recovers at start."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@contextlib.contextmanager
def own_mariadb() -> Iterator[OwnMariaDB]:
    tmp = Path(tempfile.mkdtemp(prefix="syncd-own-mariadb-"))
    server: OwnMariaDB | None = None
    try:
        server = OwnMariaDB(tmp)
        server.start()
        yield server
    finally:
        if server is not None and server.running:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
