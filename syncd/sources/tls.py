"""TLS for the FTP and HTTP sources: one way to verify a server, whatever the protocol.

A server certificate is verified by default: against the system's CAs, or only the CAs in
`source.ca_file`, host name included. `source.tls_fingerprint` pins the certificate itself instead
(a self-signed one on a 1C server is common): its SHA-256 must match, whoever signed it.
"""

from __future__ import annotations

import hashlib
import ssl

from syncd.config import SourceConfig
from syncd.errors import SourceError


def client_context(cfg: SourceConfig) -> ssl.SSLContext:
    if cfg.tls_fingerprint:
        # The pin replaces the CA check: checked on every handshake by check_pin.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        try:
            ctx = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(f"source.ca_file {cfg.ca_file}: not a PEM file of CA certificates ({exc})") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def fingerprint(der: bytes) -> str:
    """`AB:CD:…`, as `openssl x509 -noout -fingerprint -sha256` prints it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def check_pin(sock: ssl.SSLSocket, cfg: SourceConfig, where: str) -> None:
    """With source.tls_fingerprint: refuse a connection whose certificate is not the pinned one."""
    if not cfg.tls_fingerprint:
        return
    der = sock.getpeercert(binary_form=True) or b""
    if hashlib.sha256(der).hexdigest() != cfg.tls_fingerprint:
        sock.close()
        raise SourceError(
            f"{where}: TLS CERTIFICATE MISMATCH: the server's certificate has SHA-256 fingerprint "
            f"{fingerprint(der)}, not source.tls_fingerprint. The certificate may have been renewed, or someone "
            "may be intercepting the connection: nothing was read. Check the new fingerprint with the server's "
            "admin out of band before changing tls_fingerprint"
        )


def verify_error(exc: ssl.SSLError, where: str, cfg: SourceConfig) -> SourceError:
    """The message for a handshake that failed, saying which check refused the server."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        against = f"the CAs in source.ca_file ({cfg.ca_file})" if cfg.ca_file else "the system's CAs"
        return SourceError(
            f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}; checked against {against} "
            "and the host name): nothing was read. Use the CA that signed it (source.ca_file), or pin the "
            "certificate itself (source.tls_fingerprint, checked with the server's admin)"
        )
    reason = getattr(exc, "reason", None) or str(exc)
    return SourceError(f"{where}: the TLS handshake failed ({reason}); is TLS set up on that port? "
                       "will retry next run")
