"""One export at a URL as the source: a 1C HTTP service (`/hs/...`) answering GET with format v1.

A run sends one conditional GET (If-None-Match / If-Modified-Since with the validators of the last
export handled, syncd.sources.httpstate): 304, or a 200 carrying that same ETag, lists nothing, so an
unchanged export is neither downloaded nor applied again. A new export is listed as one file named
after the URL and its time, and its body streams to disk as it arrives (a header read first, then the
rest, with no second request). A 5xx, a refused login or a body cut short fails the run (exit 6).

The client is the standard library's http.client, chosen over urllib3/httpx/requests: one GET needs no
pool, no redirects (which would carry the credentials elsewhere), no proxies and no content decoding;
its TLS is the same ssl context (CA file or pinned fingerprint) the FTP source uses; it reports a cut
chunked body (IncompleteRead) and leaves the Content-Length check to us, which is done below; and it
adds no dependency to a daemon that holds the site's database credentials. Basic credentials are sent
as UTF-8 (RFC 7617), so a Cyrillic 1C login works.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import logging
import mimetypes
import os
import socket
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from syncd.config import FileAction, SourceConfig
from syncd.errors import SourceError
from syncd.plumbing.statedir import download_file, writing
from syncd.sources import httpstate
from syncd.sources.base import HashingWriter, format_seconds, unsafe_name
from syncd.sources.listing import Listing, Refused, RemoteFile
from syncd.sources.tls import check_pin, client_context, verify_error

log = logging.getLogger(__name__)

MIN_RATE = 128 * 1024  # as the SFTP source: the slowest link before a download's deadline aborts it
BLOCK = 64 * 1024
_warned_plaintext = False


class HttpSource:
    def __init__(self, cfg: SourceConfig):
        self.cfg = cfg
        parts = urllib.parse.urlsplit(cfg.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._segment = urllib.parse.unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) or "export"
        self._conn: http.client.HTTPConnection | None = None
        self._response: http.client.HTTPResponse | None = None
        self._head = b""  # bytes of the body already read by head()
        self._pending: httpstate.Validators | None = None  # of the listed export, saved by finish()

    def describe(self) -> str:
        parts = urllib.parse.urlsplit(self.cfg.url)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))

    def __enter__(self) -> HttpSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        response, conn = self._response, self._conn
        self._response = self._conn = None
        self._head = b""
        for thing in (response, conn):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()

    # ---------------------------------------------------------------- the request

    def _auth(self) -> dict[str, str]:
        cfg = self.cfg
        if cfg.auth == "basic":
            password = cfg.password()
            if not password:
                raise SourceError(f"source.password_env names ${cfg.password_env}, but that variable is not set "
                                  "or empty in syncd's environment")
            pair = base64.b64encode(f"{cfg.username}:{password}".encode()).decode("ascii")
            return {"Authorization": f"Basic {pair}"}
        if cfg.auth == "bearer":
            token = cfg.token()
            if not token:
                raise SourceError(f"source.token_env names ${cfg.token_env}, but that variable is not set "
                                  "or empty in syncd's environment")
            return {"Authorization": f"Bearer {token}"}
        return {}

    def _connect(self) -> http.client.HTTPConnection:
        global _warned_plaintext
        cfg = self.cfg
        timeout = cfg.connect_timeout.total_seconds()
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=client_context(cfg))
        else:
            if not _warned_plaintext:
                log.warning("source: an http:// url (allow_plaintext = true): the credentials and the export cross "
                            "the network in clear text")
                _warned_plaintext = True
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        where = f"HTTP server {self._host}:{self._port}"
        try:
            conn.connect()
        except ssl.SSLError as exc:
            conn.close()
            raise verify_error(exc, where, cfg) from None
        except socket.gaierror as exc:
            raise SourceError(f"{where}: cannot resolve host {self._host!r}: {exc.strerror}; check source.url"
                              ) from None
        except ConnectionRefusedError:
            raise SourceError(f"{where}: connection refused; is the server running and the port in "
                              "source.url right?") from None
        except TimeoutError:
            raise SourceError(f"{where}: no answer within connect_timeout={format_seconds(timeout)}; will retry "
                              "next run") from None
        except OSError as exc:
            raise SourceError(f"{where}: cannot connect: {exc.strerror or exc}; will retry next run") from None
        if isinstance(conn.sock, ssl.SSLSocket):
            check_pin(conn.sock, cfg, where)
        assert conn.sock is not None
        conn.sock.settimeout(cfg.io_timeout.total_seconds())
        return conn

    def _get(self, headers: dict[str, str]) -> http.client.HTTPResponse:
        """The response to a GET; a kept-alive connection the server closed meanwhile is opened again once."""
        for attempt in (0, 1):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connect()
            try:
                self._conn.request("GET", self._target, headers=headers)
                return self._conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if not reused or attempt:
                    raise
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _step(self, what: str) -> Iterator[None]:
        try:
            yield
        except SourceError:
            raise
        except TimeoutError:
            self.close()
            raise SourceError(f"{self.describe()}: {what}: no answer within io_timeout="
                              f"{format_seconds(self.cfg.io_timeout.total_seconds())}; will retry next run") from None
        except http.client.IncompleteRead as exc:
            self.close()
            raise SourceError(f"{self.describe()}: {what}: the body was cut off after {len(exc.partial)} more bytes; "
                              "nothing applied; will retry next run") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            raise SourceError(f"{self.describe()}: {what}: {detail}; the connection was lost; will retry "
                              "next run") from None

    # ---------------------------------------------------------------- listing

    def list(self) -> Listing:
        if self._response is not None:  # an earlier listing's body nobody read: start over
            self.close()
        known = httpstate.load(self.cfg.state_dir, self.cfg.url)
        headers = {"Accept": "application/xml, application/json, */*;q=0.5", "Accept-Encoding": "identity",
                   **known.headers(), **self._auth()}
        with self._step("GET"):
            response = self._get(headers)
            if response.status == 304:
                response.read()
                return Listing(ready=[], waiting=[])
            if response.status != 200:
                raise self._status_error(response)
        etag = response.getheader("ETag")
        if etag and etag == known.etag:  # a server that ignores If-None-Match but says it is the same
            log.debug("%s: ETag %s unchanged, not downloaded", self.describe(), etag)
            self.close()
            return Listing(ready=[], waiting=[])
        self._response, self._head = response, b""
        self._pending = httpstate.Validators(etag, response.getheader("Last-Modified"))
        remote = RemoteFile(self._name(response), _length(response) or 0, _modified(response))
        why = unsafe_name(remote.name)
        if why is not None:
            self.close()
            return Listing(ready=[], waiting=[], refused=[Refused(remote.name, f"the name {why}")])
        return Listing(ready=[remote], waiting=[])

    def _name(self, response: http.client.HTTPResponse) -> str:
        """`<last part of the URL>_<UTC time of the export>.<ext from Content-Type>`: one name per export."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(_modified(response)))
        kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        ext = {"application/xml": ".xml", "text/xml": ".xml", "application/json": ".json",
               "application/gzip": ".gz", "application/zip": ".zip"}.get(kind) or mimetypes.guess_extension(kind) or ""
        stem = self._segment
        if ext and stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
        return f"{stem}_{stamp}{ext}"

    def _status_error(self, response: http.client.HTTPResponse) -> SourceError:
        status, reason = response.status, response.reason
        self.close()
        where = f"{self.describe()}: GET answered {status} {reason}"
        if status in (401, 403):
            how = {"basic": f"source.username and ${self.cfg.password_env}", "bearer": f"${self.cfg.token_env}",
                   "none": "source.auth (none is set)"}[self.cfg.auth]
            return SourceError(f"{where}: the login was refused; check {how}")
        if 300 <= status < 400:
            return SourceError(f"{where} to {response.getheader('Location')}: syncd does not follow redirects "
                               "(they would carry the credentials); put the final URL in source.url")
        if status >= 500:
            return SourceError(f"{where}: the 1C side failed; nothing applied; will retry next run")
        return SourceError(f"{where}; check source.url")

    # ---------------------------------------------------------------- reading

    def _body(self, file: RemoteFile) -> http.client.HTTPResponse:
        if self._response is None or (self._response.isclosed() and not self._head):
            raise SourceError(f"{self.describe()}: {file.name} is no longer available in this connection; "
                              "will retry next run")
        return self._response

    def head(self, file: RemoteFile, size: int) -> bytes:
        response = self._body(file)
        with self._step("reading the start of the export"):
            while len(self._head) < size:
                data = response.read(min(BLOCK, size - len(self._head)))
                if not data:
                    break
                self._head += data
        return self._head[:size]

    def fetch(self, file: RemoteFile, dest: Path, progress: Callable[[int, int], None] | None = None,
              written: Callable[[Path, int], None] | None = None) -> str:
        response = self._body(file)
        expected = _length(response)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        started, base = time.monotonic(), self.cfg.io_timeout.total_seconds()
        what = f"downloading {file.name} to {dest}"
        try:
            with self._step(what), download_file(tmp) as out:
                hashed = HashingWriter(out, None if written is None else lambda size: written(tmp, size), path=tmp)
                done = 0
                data, self._head = self._head, b""
                while True:
                    if not data:
                        data = response.read(BLOCK)
                        if not data:
                            break
                    hashed.write(data)
                    done += len(data)
                    if progress is not None:
                        progress(done, expected or done)
                    # Slower on average than MIN_RATE (with or without a Content-Length): a trickle is cut.
                    budget = base + max(expected or 0, done) / MIN_RATE
                    if time.monotonic() - started > budget:
                        self.close()
                        raise SourceError(f"{self.describe()}: {what}: not finished within {format_seconds(budget)} "
                                          f"(io_timeout + {MIN_RATE // 1024} KiB/s); will retry next run")
                    data = b""
            if expected is not None and done != expected:
                self.close()
                raise SourceError(f"{self.describe()}: {what}: the body was cut off at {done} of {expected} bytes "
                                  "(Content-Length); nothing applied; will retry next run")
            self._response = None
            with writing(dest, "renaming the download to"):
                os.replace(tmp, dest)
            return hashed.hexdigest()
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def finish(self, file: RemoteFile, action: FileAction) -> None:
        """Remember the export's ETag: the same export is not downloaded again (on success or rejection alike)."""
        if self._pending is not None:
            httpstate.save(self.cfg.state_dir, self.cfg.url, self._pending)
            self._pending = None
        if self._response is not None:  # handled from its header alone (a duplicate): the rest is not read
            self.close()


def _length(response: http.client.HTTPResponse) -> int | None:
    value = response.getheader("Content-Length")
    return int(value) if value and value.strip().isdigit() else None


def _modified(response: http.client.HTTPResponse) -> float:
    value = response.getheader("Last-Modified")
    if value:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            return email.utils.parsedate_to_datetime(value).timestamp()
    return time.time()
