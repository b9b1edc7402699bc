"""sd_notify datagrams as systemd receives them."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from syncd.plumbing.notify import Notifier, watchdog_interval


def test_messages_reach_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        n = Notifier(str(path))
        n.ready("started;\nevery 30m")
        n.watchdog()
        n.stopping("bye")
        assert server.recv(4096) == b"READY=1\nSTATUS=started; every 30m"
        assert server.recv(4096) == b"WATCHDOG=1"
        assert server.recv(4096) == b"STOPPING=1\nSTATUS=bye"
        n.close()


def test_abstract_socket() -> None:
    name = f"syncd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        Notifier("@" + name).status("idle")
        assert server.recv(4096) == b"STATUS=idle"


def test_without_systemd_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    n.ready("x")  # no error


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None  # meant for another process
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


@pytest.mark.timeout(60)  # a send that blocks on the full queue fails here instead of hanging
def test_a_full_queue_never_blocks(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))  # nobody reads: the queue fills after a few messages
        n = Notifier(str(path))
        for _ in range(2000):
            n.watchdog()
        n.close()
        assert server.recv(4096) == b"WATCHDOG=1"  # the first ones did arrive
