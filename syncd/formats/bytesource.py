"""The one interface between syncd.formats' decompressed stream and the readers and byte filters."""

from __future__ import annotations

from typing import Protocol


class ByteSource(Protocol):
    """The decompressed bytes of an export as syncd.formats hands them to a reader."""

    at_eof: bool
    newlines: int

    def read(self, size: int = -1, /) -> bytes: ...

    def peek_at_least(self, size: int, /) -> bytes: ...

    def counterparty_done(self, count: int = 1, /) -> None:
        """The header (the first call) or `count` counterparties ended before the bytes read from here
        on: the reader holds none of them any more, or a byte filter cut them out (syncd.formats.guard)."""
