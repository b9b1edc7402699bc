"""What a source lists and the interface every source implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from syncd.config import FileAction


@dataclass(frozen=True)
class RemoteFile:
    name: str  # base name inside the source folder
    size: int
    mtime: float  # seconds since the epoch, as the server reports it


@dataclass(frozen=True)
class Waiting:
    """A matching file that is not taken this run, and why (still written, no marker yet…)."""

    name: str
    reason: str


@dataclass(frozen=True)
class Refused:
    """A matching name that is not a plain file name (`/`, a control character…): never read, never moved."""

    name: str
    reason: str


@dataclass(frozen=True)
class Listing:
    ready: list[RemoteFile]  # complete files, sorted by name
    waiting: list[Waiting]
    refused: list[Refused] = field(default_factory=list)


class Source(Protocol):
    """Used as a context manager: connects on enter, disconnects on exit. Raises SourceError."""

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc: object) -> None: ...

    def describe(self) -> str:
        """Where this source points, for messages (never with a password)."""
        ...

    def list(self) -> Listing: ...

    def fetch(self, file: RemoteFile, dest: Path, progress: Callable[[int, int], None] | None = None,
              written: Callable[[Path, int], None] | None = None) -> str:
        """Download `file` to `dest` (written whole or not at all) and return its sha256 (hex); its size
        must match the listing.

        `progress(bytes_done, bytes_total)` is called as the download goes. `written(part, size)` is
        called each time the first `size` bytes are on disk in `part`, the temporary file beside
        `dest` that becomes `dest` when the download is complete: the file can be read as it grows.
        """
        ...

    def head(self, file: RemoteFile, size: int) -> bytes:
        """The first `size` bytes of `file` (fewer if it is shorter), without downloading the rest."""
        ...

    def finish(self, file: RemoteFile, action: FileAction) -> None:
        """Keep, delete or move the file (and its `.done` marker) after it was handled."""
        ...
