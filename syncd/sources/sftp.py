"""An SFTP server as the export source (paramiko).

The host key is always checked against the configured known_hosts: an unknown or changed key
is refused with the fingerprint and the steps to trust it, never accepted on first sight.
Every network step has a timeout; a download also has an overall deadline enforced from a
second thread, because paramiko's channel timeout does not fire in every stall during
prefetching transfers.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import logging
import os
import socket
import stat
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, Protocol, cast

import paramiko
from paramiko.sftp import CMD_DATA, CMD_EXTENDED, CMD_EXTENDED_REPLY, CMD_READ, CMD_STATUS, int64

from syncd.config import FileAction, SourceConfig
from syncd.errors import SourceError
from syncd.plumbing.statedir import download_file, writing
from syncd.sources.base import (
    Entry,
    HashingWriter,
    classify_now,
    format_seconds,
    join,
    marker_name,
    numbered_name,
    plain_name,
)
from syncd.sources.listing import Listing, RemoteFile
from syncd.sources.sftplist import listdir

log = logging.getLogger(__name__)

# The slowest link a download is allowed before the deadline aborts it (bytes/s, ~1 Mbit/s):
# a 100 MB export gets io_timeout + ~13 minutes.
MIN_RATE = 128 * 1024
# A download keeps up to REQUESTS reads in flight on one handle (OpenSSH's own client keeps 64;
# unbounded prefetch hangs some servers), and at most IN_FLIGHT bytes of them.
# Not paramiko's get()/readv(): their prefetch thread races with the reader (paramiko PR #2519),
# which then falls back to one round trip per 32 KiB while the thread's answers pile up in memory.
REQUESTS = 64
IN_FLIGHT = 4 << 20
CHUNK = 32 * 1024  # paramiko's SFTPFile.MAX_REQUEST_SIZE; the size every SFTP server must serve
# paramiko spends its time per SSH packet, not per byte: with its default 32 KiB packets a 32 KiB
# read answer takes two packets, and 300 MB took 4.6 s, its Python work under the parser's GIL.
# A server that says it serves larger reads (OpenSSH's limits@openssh.com: 255 KiB) gets them,
# over packets large enough to carry one answer each: 1.1 s for the same 300 MB
# (bench/sftp_download.py).
MAX_CHUNK = 255 * 1024
PACKET = 256 * 1024
WINDOW = 8 << 20
_MAX_SUFFIX = 1000


class _Requests(Protocol):
    """The SFTPClient internals a download uses; the type stubs leave them out."""

    def _async_request(self, fileobj: object, t: int, *args: object) -> int: ...
    def _read_response(self, waitfor: int | None = None) -> tuple[int | None, paramiko.Message | None]: ...
    def _convert_status(self, msg: paramiko.Message) -> None: ...
    def _request(self, t: int, *args: object) -> tuple[int | None, paramiko.Message | None]: ...


class _Answers:
    """Collects the answers to a download's read requests.

    SFTPClient._read_response() hands each answer to the object the request was sent for, by
    calling its _async_response(); that is how paramiko's own prefetch receives data. Its
    _expecting map holds these objects weakly: the download keeps this one alive.
    """

    def __init__(self) -> None:
        self.got: dict[int, tuple[int, paramiko.Message]] = {}

    def _async_response(self, t: int, msg: paramiko.Message, num: int) -> None:
        self.got[num] = (t, msg)


def read_size(sftp: paramiko.SFTPClient) -> int:
    """The largest read to ask `sftp` for: what it announces (limits@openssh.com, capped at
    MAX_CHUNK), or CHUNK from a server that does not know the extension."""
    raw = cast(_Requests, sftp)
    try:
        t, msg = raw._request(CMD_EXTENDED, "limits@openssh.com")
    except (OSError, EOFError, paramiko.SFTPError):  # SSH_FX_OP_UNSUPPORTED, as the protocol asks
        return CHUNK
    if t != CMD_EXTENDED_REPLY or msg is None:
        return CHUNK
    try:
        msg.get_int64()  # max packet length
        max_read = msg.get_int64()
    except (struct.error, IndexError, ValueError):  # a reply shorter than the extension's
        return CHUNK
    # 0 means "no limit given"; below CHUNK would be a broken answer: every server serves CHUNK.
    return min(max_read, MAX_CHUNK) if max_read >= CHUNK else CHUNK


def _download(
    sftp: paramiko.SFTPClient, remote: str, size: int, out: HashingWriter, progress: Callable[[int, int], None],
    chunk: int = CHUNK,
) -> None:
    """Write the first `size` bytes of `remote` to `out`, calling progress(done, size) per chunk.

    One thread sends the read requests and consumes their answers in file order, topping the
    requests in flight back up after each answer: no prefetch thread, so no race
    and no buffer beyond the requests in flight. Uses SFTPClient's request primitives
    (_async_request, _read_response, _convert_status), stable across paramiko releases and
    pinned by setup.cfg (<6). Stops early if the file turns out shorter than `size`; the
    caller's size check reports that.
    """
    if size == 0:
        return
    raw = cast(_Requests, sftp)
    handle = sftp.open(remote, "rb")
    answers = _Answers()
    pending: collections.deque[tuple[int, int, int]] = collections.deque()  # (request, offset, length)

    def send(offset: int, length: int) -> tuple[int, int, int]:
        num = raw._async_request(answers, CMD_READ, handle.handle, int64(offset), int(length))
        return num, offset, length

    requests = max(1, min(REQUESTS, IN_FLIGHT // chunk))
    requested = done = 0
    while done < size:
        while requested < size and len(pending) < requests:
            length = min(chunk, size - requested)
            pending.append(send(requested, length))
            requested += length
        num, offset, length = pending.popleft()
        while num not in answers.got:
            raw._read_response()  # one answer, to whichever request it belongs
        t, msg = answers.got.pop(num)
        if t == CMD_STATUS:
            try:
                raw._convert_status(msg)
            except EOFError:  # the file is shorter than listed
                break
            raise paramiko.SFTPError(f"server answered a read of {remote} with status OK and no data")
        if t != CMD_DATA:
            raise paramiko.SFTPError(f"server answered a read of {remote} with packet type {t}")
        data = msg.get_string()
        if not data:
            break
        if len(data) < length:
            # A server may return less than asked without being at the end: ask for the rest
            # before anything later is written.
            pending.appendleft(send(offset + len(data), length - len(data)))
        out.write(data)
        done += len(data)
        progress(done, size)
    # Closed only here: after a stall or a lost connection, CMD_CLOSE would wait another io_timeout
    # for an answer; the caller drops the connection then, and paramiko closes an abandoned handle
    # when it is collected. Answers still in flight after a short file are dispatched to
    # `answers` while close() waits for its own.
    handle.close()


def fingerprint(key: paramiko.PKey) -> str:
    """`SHA256:…` exactly as `ssh-keygen -lf` and `ssh` print it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey):
        super().__init__(f"{hostname} is not in known_hosts")
        self.hostname = hostname
        self.key = key


class _RejectUnknown(paramiko.RejectPolicy):
    """Paramiko's RejectPolicy, but keeping the offered key so the message can show its fingerprint."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> NoReturn:
        raise _UnknownHostKey(hostname, key)


class _DeadlineExceeded(Exception):
    pass


class SftpSource:
    def __init__(self, cfg: SourceConfig):
        self.cfg = cfg
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._chunk = CHUNK
        self._dead: str | None = None  # why the connection was dropped on purpose

    # ---------------------------------------------------------------- naming

    @property
    def _address(self) -> str:
        host = f"[{self.cfg.host}]" if ":" in self.cfg.host else self.cfg.host
        return f"{host}:{self.cfg.port}"

    def describe(self) -> str:
        d = self.cfg.remote_dir
        # RFC-draft sftp URLs mark paths relative to the login directory with /~/.
        path = d if d.startswith("/") else "/~/" + ("" if d in (".", "") else d.removeprefix("./"))
        return f"sftp://{self.cfg.username}@{self._address}{path}"

    def _known_hosts_name(self) -> str:
        return self.cfg.host if self.cfg.port == 22 else f"[{self.cfg.host}]:{self.cfg.port}"

    def _keyscan(self) -> str:
        port = "" if self.cfg.port == 22 else f"-p {self.cfg.port} "
        return f"ssh-keyscan {port}{self.cfg.host} >> {self.cfg.known_hosts}"

    # ---------------------------------------------------------------- connection

    def __enter__(self) -> SftpSource:
        self._connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        for thing in (sftp, client):
            if thing is not None:
                with contextlib.suppress(Exception):  # closing a dead connection may raise anything
                    thing.close()

    def _load_key(self, path: Path) -> paramiko.PKey:
        try:
            from_path = getattr(paramiko.PKey, "from_path", None)
            if from_path is not None:
                key: paramiko.PKey = from_path(path)
                return key
            last: Exception | None = None
            for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
                try:
                    return cls.from_private_key_file(str(path))
                except paramiko.SSHException as exc:
                    last = exc
            raise paramiko.SSHException(f"not an ed25519, ecdsa or rsa private key ({last})")
        except (paramiko.PasswordRequiredException, TypeError):
            # cryptography raises TypeError for an encrypted key loaded without a passphrase.
            raise SourceError(
                f"source.private_key {path} is protected by a passphrase; syncd needs an unencrypted key "
                "readable only by its user (ssh-keygen -p -N '' -f <copy of the key>)"
            ) from None
        except OSError as exc:
            raise SourceError(f"cannot read source.private_key {path}: {exc.strerror}") from None
        except Exception as exc:  # paramiko.UnknownKeyType, ValueError, SSHException: not a usable key
            raise SourceError(
                f"source.private_key {path} is not a usable OpenSSH/PEM ed25519, ecdsa or rsa private key: {exc}"
            ) from None

    def _credentials(self) -> tuple[paramiko.PKey | None, str | None]:
        key = self._load_key(self.cfg.private_key) if self.cfg.private_key else None
        password: str | None = None
        if self.cfg.password_env:
            password = self.cfg.password()
            if not password and key is None:
                raise SourceError(
                    f"source.password_env names ${self.cfg.password_env}, but that variable is not set "
                    "or empty in syncd's environment"
                )
        if key is None and not password:
            raise SourceError("source: no credentials; set private_key or password_env")
        return key, password or None

    def _connect(self) -> None:
        cfg = self.cfg
        if cfg.known_hosts is None:
            raise SourceError("source.known_hosts is required: a file holding the server's host key (ssh-keyscan)")
        key, password = self._credentials()
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(cfg.known_hosts))
        except OSError as exc:
            raise SourceError(f"cannot read source.known_hosts {cfg.known_hosts}: {exc.strerror}") from None
        client.set_missing_host_key_policy(_RejectUnknown())
        timeout = cfg.connect_timeout.total_seconds()
        where = f"SFTP server {self._address}"
        started = time.monotonic()
        try:
            client.connect(
                cfg.host,
                port=cfg.port,
                username=cfg.username,
                pkey=key,
                password=password,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                allow_agent=False,
                look_for_keys=False,
            )
            transport = client.get_transport()
            assert transport is not None
            sftp = paramiko.SFTPClient.from_transport(transport, window_size=WINDOW, max_packet_size=PACKET)
            assert sftp is not None
            channel = sftp.get_channel()
            assert channel is not None
            channel.settimeout(cfg.io_timeout.total_seconds())
            chunk = read_size(sftp)
        except Exception as exc:
            client.close()
            # paramiko reports a handshake that timed out in its thread as a bare "No existing session".
            timed_out = time.monotonic() - started >= timeout
            raise self._connect_error(exc, where, key is not None, password is not None, timeout, timed_out) from None
        self._client, self._sftp, self._dead, self._chunk = client, sftp, None, chunk
        log.debug("%s: reads of %d KiB", where, chunk // 1024)

    def _connect_error(
        self, exc: Exception, where: str, with_key: bool, with_password: bool, timeout: float, timed_out: bool
    ) -> SourceError:
        cfg = self.cfg
        if isinstance(exc, _UnknownHostKey):
            return SourceError(
                f"{where}: its host key is not in source.known_hosts ({cfg.known_hosts}); the server offers "
                f"{exc.key.get_name()} {fingerprint(exc.key)}. Check this fingerprint with the server's admin "
                f"(not over this connection), then add the key: {self._keyscan()}"
            )
        if isinstance(exc, paramiko.BadHostKeyException):
            return SourceError(
                f"{where}: HOST KEY MISMATCH: the server offers {exc.key.get_name()} {fingerprint(exc.key)} but "
                f"source.known_hosts ({cfg.known_hosts}) holds {exc.expected_key.get_name()} "
                f"{fingerprint(exc.expected_key)}. The server may have been reinstalled, or someone may be "
                "intercepting the connection: nothing was downloaded. Check the new fingerprint with the server's "
                f"admin out of band; if it is right, replace the old entry: "
                f"ssh-keygen -R '{self._known_hosts_name()}' -f {cfg.known_hosts} && {self._keyscan()}"
            )
        if isinstance(exc, paramiko.BadAuthenticationType):
            return SourceError(
                f"{where}: login as {cfg.username!r} refused: the server accepts only "
                f"{', '.join(exc.allowed_types) or 'no methods'}; "
                "set source.private_key or source.password_env accordingly"
            )
        if isinstance(exc, paramiko.AuthenticationException):
            tried = " and ".join(
                x for x in (
                    f"key {cfg.private_key}" if with_key else "",
                    f"the password from ${cfg.password_env}" if with_password else "",
                ) if x
            )
            return SourceError(
                f"{where}: login as {cfg.username!r} with {tried} refused; check the user name, that the public "
                "key is in that user's authorized_keys on the server, or the password"
            )
        if isinstance(exc, socket.gaierror):
            return SourceError(f"{where}: cannot resolve host {cfg.host!r}: {exc.strerror}; check source.host")
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
            return SourceError(
                f"{where}: connection refused; is the SFTP server running and is source.port right?"
            )
        if isinstance(exc, TimeoutError) or (timed_out and isinstance(exc, paramiko.SSHException | EOFError)):
            return SourceError(
                f"{where}: no answer within connect_timeout={format_seconds(timeout)}; check the host, "
                "port and firewall; will retry next run"
            )
        if isinstance(exc, EOFError):
            return SourceError(f"{where}: the server closed the connection during login; will retry next run")
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        if isinstance(exc, paramiko.SSHException):
            return SourceError(
                f"{where}: the SSH handshake failed ({reason}); is it an SSH server and source.port right? "
                "will retry next run"
            )
        return SourceError(f"{where}: cannot connect: {reason}")

    @property
    def _conn(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            raise SourceError(f"{self.describe()}: not connected" + (f" ({self._dead})" if self._dead else ""))
        return self._sftp

    @contextlib.contextmanager
    def _step(self, what: str) -> Iterator[None]:
        """Turn whatever paramiko, the socket or the OS raises into a SourceError naming `what`."""
        try:
            yield
        except SourceError:
            raise
        except TimeoutError:
            self._drop(f"no answer to {what}")
            raise SourceError(
                f"{self.describe()}: {what}: no answer within io_timeout="
                f"{format_seconds(self.cfg.io_timeout.total_seconds())}; will retry next run"
            ) from None
        except (EOFError, paramiko.SSHException) as exc:
            self._drop(f"lost during {what}")
            text = str(exc) if isinstance(exc, paramiko.SSHException) else ""
            # paramiko words a dropped connection as "Server connection dropped: " with nothing after it.
            detail = text if text and "connection dropped" not in text else "the connection was lost"
            raise SourceError(f"{self.describe()}: {what}: {detail}; will retry next run") from None
        except OSError as exc:
            if self._client is None or not self._transport_active():
                self._drop(f"lost during {what}")
                raise SourceError(
                    f"{self.describe()}: {what}: the connection was lost; will retry next run"
                ) from None
            # Local errors (the destination) carry a file name; the server's SFTP status codes do not.
            where = f"{exc.filename}: " if exc.filename else ""
            raise SourceError(f"{self.describe()}: {what}: {where}{exc.strerror or exc}") from None

    def _transport_active(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _drop(self, why: str) -> None:
        if self._sftp is not None:
            self._dead = why
        self.close()

    # ---------------------------------------------------------------- operations

    def list(self) -> Listing:
        folder = self.cfg.remote_dir
        with self._step(f"listing {folder}"):
            attrs = listdir(self._conn, folder)
        entries = [
            Entry(
                a.filename,
                a.st_size or 0,
                # Servers that report no mtime get 0: min_age cannot be checked for them.
                float(a.st_mtime or 0),
                # A server that reports no type gets the benefit of the doubt; fetch fails on a folder.
                a.st_mode is None or stat.S_ISREG(a.st_mode),
            )
            for a in attrs
        ]
        return classify_now(entries, self.cfg)

    def fetch(self, file: RemoteFile, dest: Path, progress: Callable[[int, int], None] | None = None,
              written: Callable[[Path, int], None] | None = None) -> str:
        remote = join(self.cfg.remote_dir, plain_name(file.name))
        sftp = self._conn
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        budget = self.cfg.io_timeout.total_seconds() + file.size / MIN_RATE
        deadline = time.monotonic() + budget
        expired = threading.Event()

        def abort() -> None:
            # Closing the transport wakes a read blocked anywhere inside paramiko.
            expired.set()
            client = self._client
            if client is not None:
                client.close()

        def check(done: int, total: int) -> None:
            if time.monotonic() > deadline:
                raise _DeadlineExceeded
            if progress is not None:
                progress(done, total)

        watchdog = threading.Timer(budget, abort)
        watchdog.daemon = True
        what = f"downloading {remote} to {dest}"
        try:
            with self._step(what):
                watchdog.start()
                try:
                    with download_file(tmp) as out:
                        hashed = HashingWriter(out, None if written is None else lambda size: written(tmp, size),
                                               path=tmp)
                        _download(sftp, remote, file.size, hashed, check, self._chunk)
                except BaseException as exc:
                    if isinstance(exc, _DeadlineExceeded) or expired.is_set():
                        self._drop(f"a download took longer than {format_seconds(budget)}")
                        raise SourceError(
                            f"{self.describe()}: {what}: not finished within {format_seconds(budget)} "
                            f"(io_timeout + {MIN_RATE // 1024} KiB/s for {file.size} bytes); the connection was "
                            "closed; will retry next run (raise source.io_timeout for a very slow link)"
                        ) from None
                    raise
                finally:
                    watchdog.cancel()
                after = sftp.stat(remote)
            got = tmp.stat().st_size
            if got != file.size or after.st_size != file.size or float(after.st_mtime or 0) != file.mtime:
                raise SourceError(
                    f"{self.describe()}: {file.name} changed while downloading (listed {file.size} bytes, "
                    f"downloaded {got}, now {after.st_size}); will retry next run"
                )
            with writing(dest, "renaming the download to"):
                os.replace(tmp, dest)
            return hashed.hexdigest()
        finally:
            with contextlib.suppress(OSError):  # a folder we cannot even look into holds no part file
                tmp.unlink(missing_ok=True)

    def head(self, file: RemoteFile, size: int) -> bytes:
        remote = join(self.cfg.remote_dir, plain_name(file.name))
        with self._step(f"reading the start of {remote}"), self._conn.open(remote, "rb") as f:
            data: bytes = f.read(size)
            return data

    def finish(self, file: RemoteFile, action: FileAction) -> None:
        remote = join(self.cfg.remote_dir, plain_name(file.name))
        if action.kind == "keep":
            return
        marker = join(self.cfg.remote_dir, marker_name(file.name))
        sftp = self._conn
        if action.kind == "delete":
            with self._step(f"deleting {remote}"):
                sftp.remove(remote)
            with self._step(f"deleting {marker}"), contextlib.suppress(FileNotFoundError):
                sftp.remove(marker)
            return
        folder = join(self.cfg.remote_dir, action.dir)
        self._makedirs(folder)
        with self._step(f"moving {remote} into {folder}"):
            target = self._rename_free(remote, folder, file.name)
        if self._exists(marker):
            with self._step(f"moving {marker} into {folder}"):
                # Under the file's new name, so a numbered file and its marker still pair up.
                sftp.rename(marker, join(folder, marker_name(target.rsplit("/", 1)[-1])))

    def _rename_free(self, remote: str, folder: str, name: str) -> str:
        """Rename without ever replacing an earlier file of the same name: number the new one."""
        sftp = self._conn
        for n in range(_MAX_SUFFIX):
            candidate = join(folder, numbered_name(name, n))
            if self._exists(candidate) or self._exists(marker_name(candidate)):
                continue
            try:
                # SSH_FXP_RENAME refuses an existing target (unlike posix-rename), closing the race.
                sftp.rename(remote, candidate)
                return candidate
            except OSError:
                if not self._exists(candidate):
                    raise
        raise SourceError(
            f"{self.describe()}: {folder} already holds {_MAX_SUFFIX} files named like {name}; clean it up"
        )

    def _exists(self, path: str) -> bool:
        with self._step(f"checking {path}"):
            try:
                self._conn.stat(path)
            except FileNotFoundError:
                return False
            return True

    def _makedirs(self, folder: str) -> None:
        sftp = self._conn
        parts = folder.split("/")
        for i in range(1, len(parts) + 1):
            path = "/".join(parts[:i])
            if path in ("", "."):
                continue
            with self._step(f"creating folder {path}"):
                try:
                    st = sftp.stat(path)
                except FileNotFoundError:
                    try:
                        sftp.mkdir(path)
                    except OSError:
                        if not self._exists(path):  # else another process created it meanwhile
                            raise
                    continue
                if st.st_mode is not None and not stat.S_ISDIR(st.st_mode):
                    raise SourceError(
                        f"{self.describe()}: {path} exists and is not a folder; cannot move files into it"
                    )
