"""A stand-in for a 1C HTTP service: the standard library's HTTP(S) server serving one export.

What it serves is set by the test through `HttpServer` (the body, its ETag and Last-Modified, a
status to answer instead, a point at which to cut the body off, the credentials it wants), and it
logs every request it got, so a test can assert what syncd asked for and what it was sent.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class HttpServer:
    host: str
    port: int
    scheme: str
    body: bytes = b""
    content_type: str = "application/xml; charset=utf-8"
    etag: str | None = None  # None: derived from the body
    last_modified: float | None = None
    status: int = 200  # anything else: answered with this status and a short body
    honour_conditional: bool = True  # False: a server that ignores If-None-Match
    cut_after: int | None = None  # send the full Content-Length but only this many bytes, then close
    chunked: bool = False
    stall: float = 0.0  # seconds to wait after the first half of the body (a server that hangs)
    basic: tuple[str, str] | None = None
    bearer: str | None = None
    requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/base/hs/balance/export"

    def current_etag(self) -> str:
        return self.etag or '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'

    def bodies_sent(self) -> int:
        return sum(1 for r in self.requests if r["status"] == "200")


def _handler(server: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _authorised(self) -> bool:
            got = self.headers.get("Authorization", "")
            if server.basic is not None:
                pair = f"{server.basic[0]}:{server.basic[1]}".encode()
                return got == "Basic " + base64.b64encode(pair).decode("ascii")
            if server.bearer is not None:
                return got == f"Bearer {server.bearer}"
            return True

        def _short(self, status: int, text: bytes = b"") -> None:
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="1C"')
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def do_GET(self) -> None:
            record = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append(record)
            etag = server.current_etag()
            if not self._authorised():
                record["status"] = "401"
                return self._short(401, b"unauthorised")
            if server.status != 200:
                record["status"] = str(server.status)
                return self._short(server.status, b"1C: an error in the HTTP service module")
            if server.honour_conditional and self.headers.get("If-None-Match") == etag:
                record["status"] = "304"
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return None
            record["status"] = "200"
            self.send_response(200)
            self.send_header("Content-Type", server.content_type)
            self.send_header("ETag", etag)
            if server.last_modified is not None:
                self.send_header("Last-Modified", formatdate(server.last_modified, usegmt=True))
            body = server.body
            if server.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                data = body if server.cut_after is None else body[: server.cut_after]
                for i in range(0, len(data), 8192):
                    part = data[i:i + 8192]
                    self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                if server.cut_after is None:
                    self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.stall:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    time.sleep(server.stall)
                    body = body[len(body) // 2:]
                self.wfile.write(body if server.cut_after is None else body[: server.cut_after])
            if server.cut_after is not None:
                self.wfile.flush()
                self.close_connection = True
            return None

    return Handler


@contextlib.contextmanager
def running_httpd(*, cert: Path | None = None, key: Path | None = None) -> Iterator[HttpServer]:
    """HTTPS with `cert`/`key`, else plain HTTP, on 127.0.0.1 and a free port, in a thread."""
    state = HttpServer("127.0.0.1", 0, "https" if cert else "http")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    if cert is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
