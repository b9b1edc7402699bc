"""Helpers for the file-system tests: a local source section for write_config, small mounts."""

from __future__ import annotations

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


def fill(fs: Path) -> Path:
    """Fill the file system under `fs` to the last byte; the file returned frees it again."""
    hog = fs / "hog"
    with hog.open("wb") as out:
        block = b"\0" * (64 << 10)
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError:
            pass
        # Whatever a smaller write can still take, too.
        for size in (4096, 512, 1):
            try:
                while True:
                    out.write(b"\0" * size)
                    out.flush()
            except OSError:
                pass
    return hog
