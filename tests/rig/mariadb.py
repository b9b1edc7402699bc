"""A private MariaDB server on a temp datadir and a free port, or the one SYNCD_TEST_DATABASE_URL names.

Started once per test session; each test gets a database of its own on it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
from sqlalchemy.engine import URL, make_url

ENV_URL = "SYNCD_TEST_DATABASE_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MariaDB:
    """Where a server listens; `database(name)` gives a URL for one database on it."""

    url: URL
    _counter: itertools.count[int]
    pid: int | None = None  # the server process, when the rig started it (not for SYNCD_TEST_DATABASE_URL)

    def cpu_seconds(self) -> float | None:
        """User + system CPU the server has used so far (Linux /proc), or None if it is not ours."""
        if self.pid is None:
            return None
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{os.getpid()}_{next(self._counter)}"
        with self.admin() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return name

    def clone_database(self, source: str, prefix: str = "t") -> str:
        """A new database with the tables (structure, indexes and rows) of `source`; far faster than migrating."""
        name = self.create_database(prefix)
        with self.admin() as cur:
            cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (source,))
            for (table,) in cur.fetchall():
                cur.execute(f"CREATE TABLE `{name}`.`{table}` LIKE `{source}`.`{table}`")
                cur.execute(f"INSERT INTO `{name}`.`{table}` SELECT * FROM `{source}`.`{table}`")
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def database_url(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    @contextlib.contextmanager
    def admin(self) -> Iterator[pymysql.cursors.Cursor]:
        conn = pymysql.connect(
            host=self.url.host or "127.0.0.1",
            port=self.url.port or 3306,
            user=self.url.username or "root",
            password=self.url.password or "",
            autocommit=True,
        )
        try:
            with conn.cursor() as cur:
                yield cur
        finally:
            conn.close()


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mariadbd exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="root", password="", connect_timeout=1).close()
            return
        except pymysql.err.OperationalError:
            time.sleep(0.2)
    raise RuntimeError(f"mariadbd did not answer within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def running_mariadb(buffer_pool: str = "256M") -> Iterator[MariaDB]:
    """Yield a server: SYNCD_TEST_DATABASE_URL's, or a private one stopped (and deleted) afterwards."""
    given = os.environ.get(ENV_URL)
    if given:
        yield MariaDB(make_url(given).set(drivername="mysql+pymysql", database=None), itertools.count())
        return
    mysqld = shutil.which("mariadbd", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))
    install = shutil.which("mariadb-install-db")
    if not mysqld or not install:
        raise RuntimeError(
            "MariaDB binaries not found: apt-get install mariadb-server (or set SYNCD_TEST_DATABASE_URL)"
        )
    tmp = Path(tempfile.mkdtemp(prefix="syncd-mariadb-"))
    data = tmp / "data"
    log = tmp / "error.log"
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [install, "--no-defaults", f"--datadir={data}", *user,
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    port = free_port()
    proc = subprocess.Popen(
        [mysqld, "--no-defaults", f"--datadir={data}", *user, f"--port={port}", "--bind-address=127.0.0.1",
         f"--socket={tmp / 'mysqld.sock'}", f"--pid-file={tmp / 'mysqld.pid'}", f"--log-error={log}",
         "--skip-log-bin", f"--innodb-buffer-pool-size={buffer_pool}", "--innodb-log-file-size=256M",
         "--innodb-flush-log-at-trx-commit=2", "--innodb-flush-method=nosync", "--innodb-doublewrite=0",
         "--local-infile=1", "--max-allowed-packet=64M",
         "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(port, proc, log)
        yield MariaDB(make_url(f"mysql+pymysql://root:@127.0.0.1:{port}/"), itertools.count(), proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
