"""An FTP or FTPS server as the export source (ftplib): what 1C's own FTPСоединение can upload to.

TLS is explicit (AUTH TLS on port 21) by default, or implicit (TLS from the first byte, port 990);
the control and the data connections are both encrypted (PROT P) and the certificate is verified
(syncd.sources.tls). Data connections reuse the control connection's TLS session, which vsftpd and
proftpd require by default and plain ftplib does not do (python/cpython#63699). Clear-text FTP needs
`allow_plaintext = true` and is warned about when the source connects.

Passive mode by default. Listings come from MLSD (RFC 3659: names, sizes and UTC modification times
in one request); a server without it (vsftpd) is listed with NLST, then SIZE and MDTM per matching
name. Names are decoded as UTF-8 with surrogate escapes, so a name that is not UTF-8 is refused by
the rules in syncd.sources.base like any other name that is not a plain file name.
"""

from __future__ import annotations

import calendar
import contextlib
import ftplib
import logging
import os
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from syncd.config import FileAction, SourceConfig
from syncd.errors import SourceError
from syncd.plumbing.statedir import download_file, writing
from syncd.sources.base import (
    Entry,
    HashingWriter,
    classify_now,
    format_seconds,
    is_candidate_name,
    join,
    marker_name,
    numbered_name,
    plain_name,
    unsafe_name,
)
from syncd.sources.listing import Listing, RemoteFile
from syncd.sources.tls import check_pin, client_context, verify_error

log = logging.getLogger(__name__)

MIN_RATE = 128 * 1024  # as the SFTP source: the slowest link before a download's deadline aborts it
BLOCK = 64 * 1024
_MAX_SUFFIX = 1000
_warned_plaintext = False


class _Deadline(Exception):
    pass


class _Ftps(ftplib.FTP_TLS):
    """FTP_TLS with implicit TLS and TLS session reuse on data connections, every handshake pinned."""

    def __init__(self, cfg: SourceConfig, context: ssl.SSLContext, where: str) -> None:
        super().__init__(context=context, timeout=cfg.connect_timeout.total_seconds())
        self.cfg = cfg
        self.where = where
        self.implicit = cfg.tls == "implicit"

    def connect(self, host: str = "", port: int = 0, timeout: float = -999, source_address: Any = None) -> str:
        if not self.implicit:
            welcome: str = super().connect(host, port, timeout, source_address)
            return welcome
        self.host, self.port = host, port
        raw = socket.create_connection((host, port), self.timeout)
        self.af = raw.family
        self.sock = self.context.wrap_socket(raw, server_hostname=host)
        check_pin(self.sock, self.cfg, self.where)
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def auth(self) -> str:
        resp: str = super().auth()
        assert isinstance(self.sock, ssl.SSLSocket)
        check_pin(self.sock, self.cfg, self.where)
        return resp

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            session = self.sock.session if isinstance(self.sock, ssl.SSLSocket) else None
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
            check_pin(conn, self.cfg, self.where)
        return conn, size


def _parse_mlsd(line: str) -> Entry | None:
    facts_text, sep, name = line.partition(" ")
    if not sep:
        return None
    facts = {}
    for fact in facts_text.split(";"):
        key, eq, value = fact.partition("=")
        if eq:
            facts[key.strip().lower()] = value.strip()
    kind = facts.get("type", "").lower()
    if kind in ("cdir", "pdir"):
        return None
    return Entry(name, int(facts.get("size", "0") or 0) if facts.get("size", "").isdigit() else 0,
                 _mdtm(facts.get("modify", "")), kind == "file")


def _mdtm(stamp: str) -> float:
    """`YYYYMMDDHHMMSS[.sss]` (UTC, RFC 3659) → seconds since the epoch; 0 when missing or malformed."""
    try:
        t = time.strptime(stamp[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return 0.0
    frac = stamp[15:] if stamp[14:15] == "." else ""
    return calendar.timegm(t) + (float("0." + frac) if frac.isdigit() else 0.0)


def _lines(data: bytes) -> list[str]:
    sep = b"\r\n" if b"\r\n" in data else b"\n"
    return [raw.decode("utf-8", "surrogateescape") for raw in data.split(sep) if raw]


class FtpSource:
    def __init__(self, cfg: SourceConfig):
        self.cfg = cfg
        self._ftp: ftplib.FTP | None = None
        self._mlsd = True
        self._dead: str | None = None

    def describe(self) -> str:
        scheme = {"explicit": "ftpes", "implicit": "ftps", "none": "ftp"}[self.cfg.tls]
        host = f"[{self.cfg.host}]" if ":" in self.cfg.host else self.cfg.host
        d = self.cfg.remote_dir
        path = d if d.startswith("/") else "/" + ("" if d in (".", "") else d.removeprefix("./"))
        return f"{scheme}://{self.cfg.username}@{host}:{self.cfg.port}{path}"

    # ---------------------------------------------------------------- connection

    def __enter__(self) -> FtpSource:
        self._connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        ftp, self._ftp = self._ftp, None
        if ftp is not None:
            with contextlib.suppress(Exception):  # a polite QUIT to a dead server may raise anything
                if ftp.sock is not None:
                    ftp.sock.settimeout(2)
                ftp.quit()
            with contextlib.suppress(Exception):
                ftp.close()

    def _password(self) -> str:
        password = self.cfg.password()
        if not password:
            raise SourceError(f"source.password_env names ${self.cfg.password_env}, but that variable is not set "
                              "or empty in syncd's environment")
        return password

    def _connect(self) -> None:
        global _warned_plaintext
        cfg = self.cfg
        where = f"FTP server {cfg.host}:{cfg.port}"
        password = self._password()
        ftp: ftplib.FTP
        if cfg.tls == "none":
            if not _warned_plaintext:
                log.warning("source: tls = \"none\" (allow_plaintext = true): the FTP password and the exports "
                            "cross the network in clear text")
                _warned_plaintext = True
            ftp = ftplib.FTP(timeout=cfg.connect_timeout.total_seconds())
        else:
            ftp = _Ftps(cfg, client_context(cfg), where)
        ftp.encoding = "utf-8"
        try:
            ftp.connect(cfg.host, cfg.port)
            ftp.login(cfg.username, password)
            if isinstance(ftp, _Ftps):
                ftp.prot_p()
            ftp.set_pasv(cfg.passive)
            assert ftp.sock is not None
            ftp.sock.settimeout(cfg.io_timeout.total_seconds())
            ftp.timeout = cfg.io_timeout.total_seconds()  # data connections
            ftp.voidcmd("TYPE I")
            if cfg.remote_dir not in ("", "."):
                ftp.cwd(cfg.remote_dir)
        except Exception as exc:
            with contextlib.suppress(Exception):
                ftp.close()
            if isinstance(exc, SourceError):
                raise
            raise self._connect_error(exc, where) from None
        self._ftp, self._dead, self._mlsd = ftp, None, True

    def _connect_error(self, exc: Exception, where: str) -> SourceError:
        cfg = self.cfg
        if isinstance(exc, ssl.SSLError):
            return verify_error(exc, where, cfg)
        if isinstance(exc, socket.gaierror):
            return SourceError(f"{where}: cannot resolve host {cfg.host!r}: {exc.strerror}; check source.host")
        if isinstance(exc, ConnectionRefusedError):
            return SourceError(f"{where}: connection refused; is the FTP server running and is source.port right?")
        if isinstance(exc, TimeoutError):
            hint = "" if cfg.tls == "implicit" else " (an implicit-TLS port answers nothing: tls = \"implicit\"?)"
            wait = format_seconds(cfg.connect_timeout.total_seconds())
            return SourceError(f"{where}: no answer within connect_timeout={wait}"
                               f"{hint}; check the host, port and firewall; will retry next run")
        reply = str(exc).strip()
        if isinstance(exc, ftplib.error_perm) and reply.startswith("530"):
            return SourceError(f"{where}: login as {cfg.username!r} with the password from ${cfg.password_env} "
                               f"refused ({reply}); check the user name and the password")
        if isinstance(exc, ftplib.error_perm) and reply[:3] in ("500", "502", "504", "534", "431"):
            return SourceError(f"{where}: the server refused TLS ({reply}); it may not offer explicit FTPS "
                               "(try tls = \"implicit\" on port 990, or ask its admin to enable TLS)")
        if isinstance(exc, ftplib.error_perm) and cfg.remote_dir not in ("", "."):
            return SourceError(f"{where}: cannot open source.remote_dir {cfg.remote_dir!r}: {reply}")
        if isinstance(exc, EOFError | ConnectionError):
            return SourceError(f"{where}: the server closed the connection during login; will retry next run")
        return SourceError(f"{where}: cannot connect: {reply or type(exc).__name__}")

    @property
    def _conn(self) -> ftplib.FTP:
        if self._ftp is None:
            raise SourceError(f"{self.describe()}: not connected" + (f" ({self._dead})" if self._dead else ""))
        return self._ftp

    def _drop(self, why: str) -> None:
        if self._ftp is not None:
            self._dead = why
        self.close()

    @contextlib.contextmanager
    def _step(self, what: str) -> Iterator[None]:
        """Turn what ftplib, ssl or the socket raises into a SourceError naming `what`."""
        try:
            yield
        except SourceError:
            raise
        except TimeoutError:
            self._drop(f"no answer to {what}")
            raise SourceError(f"{self.describe()}: {what}: no answer within io_timeout="
                              f"{format_seconds(self.cfg.io_timeout.total_seconds())}; will retry next run") from None
        except ftplib.error_perm as exc:  # 5xx: about this file or folder; the connection is fine
            raise SourceError(f"{self.describe()}: {what}: the server answered {str(exc).strip()}") from None
        except (EOFError, OSError, ftplib.Error) as exc:  # 4xx, a reset, a cut TLS stream: the link is gone
            self._drop(f"lost during {what}")
            detail = str(exc).strip() if isinstance(exc, ftplib.Error) else "the connection was lost"
            raise SourceError(f"{self.describe()}: {what}: {detail}; will retry next run") from None

    # ---------------------------------------------------------------- listing

    def _retr_lines(self, cmd: str) -> list[str]:
        chunks: list[bytes] = []
        self._conn.retrbinary(cmd, chunks.append)
        return _lines(b"".join(chunks))

    def _stat(self, name: str) -> tuple[int, float] | None:
        """(size, mtime) from SIZE and MDTM; None for a name that is not a file (a folder, gone)."""
        ftp = self._conn
        try:
            size = ftp.size(name)
        except ftplib.error_perm:
            return None
        try:
            mtime = _mdtm(ftp.sendcmd(f"MDTM {name}")[4:].strip())
        except ftplib.error_perm:
            mtime = 0.0  # no MDTM: min_age cannot be checked, as for an SFTP server without mtimes
        return (size or 0), mtime

    def _entries(self) -> list[Entry]:
        if self._mlsd:
            try:
                return [e for e in map(_parse_mlsd, self._retr_lines("MLSD")) if e is not None]
            except ftplib.error_perm as exc:
                if not str(exc).startswith(("500", "502", "504")):
                    raise
                self._mlsd = False  # vsftpd: 500 Unknown command
        entries = []
        try:
            names = self._retr_lines("NLST")
        except (ftplib.error_temp, ftplib.error_perm) as exc:
            if not str(exc).startswith(("450", "550")):  # some servers' "No files found" for an empty folder
                raise
            names = []
        for name in names:
            name = name.rsplit("/", 1)[-1] if name.startswith("./") else name
            if not is_candidate_name(name) or not self._askable(name):
                entries.append(Entry(name, 0, 0.0))  # a marker, a temp name: only its presence counts
                continue
            stat = self._stat(name)
            entries.append(Entry(name, stat[0], stat[1]) if stat else Entry(name, 0, 0.0, is_file=False))
        return entries

    def _askable(self, name: str) -> bool:
        return fnmatchcase(name, self.cfg.pattern) and unsafe_name(name) is None

    def list(self) -> Listing:
        with self._step(f"listing {self.cfg.remote_dir}"):
            entries = self._entries()
        return classify_now(entries, self.cfg)

    # ---------------------------------------------------------------- reading

    def fetch(self, file: RemoteFile, dest: Path, progress: Callable[[int, int], None] | None = None,
              written: Callable[[Path, int], None] | None = None) -> str:
        name = plain_name(file.name)
        ftp = self._conn
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        budget = self.cfg.io_timeout.total_seconds() + file.size / MIN_RATE
        deadline = time.monotonic() + budget
        what = f"downloading {name} to {dest}"
        try:
            with self._step(what):
                with download_file(tmp) as out:
                    hashed = HashingWriter(out, None if written is None else lambda size: written(tmp, size), path=tmp)
                    done = 0

                    def take(data: bytes) -> None:
                        nonlocal done
                        hashed.write(data)
                        done += len(data)
                        if time.monotonic() > deadline:
                            raise _Deadline
                        if progress is not None:
                            progress(done, file.size)

                    try:
                        ftp.retrbinary(f"RETR {name}", take, blocksize=BLOCK)
                    except _Deadline:
                        self._drop(f"a download took longer than {format_seconds(budget)}")
                        raise SourceError(
                            f"{self.describe()}: {what}: not finished within {format_seconds(budget)} "
                            f"(io_timeout + {MIN_RATE // 1024} KiB/s for {file.size} bytes); the connection was "
                            "closed; will retry next run (raise source.io_timeout for a very slow link)") from None
                after = self._stat(name)
            got = tmp.stat().st_size
            if got != file.size or after is None or after[0] != file.size or after[1] != file.mtime:
                now = after[0] if after else "gone"
                raise SourceError(f"{self.describe()}: {file.name} changed while downloading (listed {file.size} "
                                  f"bytes, downloaded {got}, now {now}); will retry next run")
            with writing(dest, "renaming the download to"):
                os.replace(tmp, dest)
            return hashed.hexdigest()
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def head(self, file: RemoteFile, size: int) -> bytes:
        name = plain_name(file.name)
        ftp = self._conn
        buf = bytearray()
        with self._step(f"reading the start of {name}"):
            with ftp.transfercmd(f"RETR {name}") as conn:
                while len(buf) < size:
                    data = conn.recv(min(BLOCK, size - len(buf)))
                    if not data:
                        break
                    buf += data
            # 226 when the whole file was sent, else 426/451 for the transfer cut short: both fine.
            with contextlib.suppress(ftplib.error_temp, ftplib.error_perm, ftplib.error_reply):
                ftp.voidresp()
            ftp.voidcmd("NOOP")
        return bytes(buf)

    # ---------------------------------------------------------------- after a file

    def finish(self, file: RemoteFile, action: FileAction) -> None:
        name = plain_name(file.name)
        if action.kind == "keep":
            return
        ftp = self._conn
        marker = marker_name(name)
        if action.kind == "delete":
            with self._step(f"deleting {name}"):
                ftp.delete(name)
            with self._step(f"deleting {marker}"), contextlib.suppress(ftplib.error_perm):
                ftp.delete(marker)
            return
        folder = join(".", action.dir)
        self._makedirs(folder)
        with self._step(f"moving {name} into {folder}"):
            target = self._rename_free(name, folder)
            if self._stat(marker) is not None:
                # Under the file's new name, so a numbered file and its marker still pair up.
                ftp.rename(marker, marker_name(target))

    def _rename_free(self, name: str, folder: str) -> str:
        """Rename without replacing an earlier file of the same name (many FTP servers overwrite on RNTO)."""
        for n in range(_MAX_SUFFIX):
            candidate = join(folder, numbered_name(name, n))
            if self._stat(candidate) is not None or self._stat(marker_name(candidate)) is not None:
                continue
            self._conn.rename(name, candidate)
            return candidate
        raise SourceError(f"{self.describe()}: {folder} already holds {_MAX_SUFFIX} files named like {name}; "
                          "clean it up")

    def _makedirs(self, folder: str) -> None:
        ftp = self._conn
        with self._step(f"creating folder {folder}"):
            home = ftp.pwd()
            parts = folder.split("/")
            for i in range(1, len(parts) + 1):
                path = "/".join(parts[:i])
                if path in ("", "."):
                    continue
                try:
                    ftp.cwd(path)
                except ftplib.error_perm:
                    try:
                        ftp.mkd(path)
                    except ftplib.error_perm:
                        raise SourceError(f"{self.describe()}: {path} exists and is not a folder, or cannot be "
                                          "created; cannot move files into it") from None
                else:
                    ftp.cwd(home)
