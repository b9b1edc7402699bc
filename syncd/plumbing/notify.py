"""sd_notify(3) without libsystemd: datagrams to $NOTIFY_SOCKET (READY, STATUS, WATCHDOG, STOPPING).

Outside systemd (no NOTIFY_SOCKET) every call does nothing, so the daemon can call it freely.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    def __init__(self, address: str | None = None):
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | None = None
        self._sock: socket.socket | None = None
        if address:
            # A leading '@' names a socket in the abstract namespace.
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> None:
        """send(READY=1, STATUS="…"): one datagram; errors are ignored (systemd may be restarting)."""
        if self._sock is None or self._address is None:
            return
        # STATUS must be one line: systemd takes up to the newline.
        lines = [f"{k}={str(v).replace(chr(10), ' ')}" for k, v in fields.items()]
        # Never wait: a busy or hung PID 1 with a full socket queue must not stall the daemon (or a run).
        data = "\n".join(lines).encode("utf-8")
        with contextlib.suppress(OSError):
            self._sock.sendto(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL, self._address)

    def ready(self, status: str) -> None:
        self.send(READY=1, STATUS=status)

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def watchdog(self) -> None:
        self.send(WATCHDOG=1)

    def stopping(self, status: str) -> None:
        self.send(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when no watchdog is set for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2 / 1_000_000 if value > 0 else None
