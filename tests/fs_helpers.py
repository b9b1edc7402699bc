"""Helpers for the file-system tests: a local source section for write_config, small mounts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SFTP_KEYS = ("host", "port", "username", "private_key", "known_hosts", "remote_dir")


def local_source(folder: Path, **extra: Any) -> dict[str, Any]:
    """`source=` for tests.ops_helpers.write_config: a local folder instead of the suite's sshd."""
    return {**dict.fromkeys(SFTP_KEYS), "type": "local", "path": str(folder), **extra}


@contextmanager
def tmpfs(where: Path, size: str = "1m", mode: str = "0755") -> Iterator[Path]:
    """A small tmpfs of our own (the suite runs as root), lazily unmounted whatever happens."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(fs: Path, leave: int = 0) -> Path:
    """Fill the file system under `fs` to the last byte, or all but `leave` bytes; the file returned
    frees it again."""
    reserve = fs / "reserve"
    if leave:
        reserve.write_bytes(b"\0" * leave)
    hog = fs / "hog"
    fd = os.open(hog, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass  # ENOSPC: on to smaller writes, which may still fit in the last page
    finally:
        os.close(fd)
    reserve.unlink(missing_ok=True)
    return hog
