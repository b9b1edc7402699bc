"""A download read while it arrives: pieces put by the downloading thread, read as a stream by the parser.

The runner applies a large export while it downloads: the download's `tee` puts each piece here,
and the export reader reads `Pipe.reader()` as if it were the file. What the reader sees ends where
the download ends; if the download fails, the reader's next read raises its error, so the apply
stops there and its transaction is rolled back. Memory is bounded: at most `depth` pieces wait.
A reader that stops early (a rejected file, a database error) calls `drain()`: the download then
runs to its end without waiting for it, so the file is still there whole (to keep a rejected copy)
and the SFTP session is left with no reads in flight.
"""

from __future__ import annotations

import io
import queue
import threading
from typing import Final

_END: Final = object()


class Pipe:
    def __init__(self, depth: int = 16) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._draining = threading.Event()

    # -- the downloading thread

    def put(self, piece: bytes) -> None:
        """Hand a piece to the reader; waits while `depth` pieces wait, unless the reader is gone."""
        self._offer(piece)

    def close(self, error: BaseException | None = None) -> None:
        """The download ended: cleanly (None), or with `error`, which the reader's next read raises."""
        self._offer(_END if error is None else error)

    def _offer(self, item: object) -> None:
        while not self._draining.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # -- the reading thread

    def drain(self) -> None:
        """The reader stops reading: what is put from now on is dropped, and put() never waits."""
        self._draining.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def reader(self, buffer_size: int = 1 << 20) -> io.BufferedReader:
        """The stream of what is put, in order; read() returns b"" once the download has ended."""
        return io.BufferedReader(_PipeRaw(self._queue), buffer_size=buffer_size)


class _PipeRaw(io.RawIOBase):
    def __init__(self, pieces: queue.Queue[object]) -> None:
        self._pieces = pieces
        self._piece = memoryview(b"")
        self._ended = False
        self._error: BaseException | None = None  # raised again on every later read: never a quiet end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._piece:
            if self._error is not None:
                raise self._error
            if self._ended:
                return 0
            item = self._pieces.get()
            if item is _END:
                self._ended = True
                return 0
            if isinstance(item, BaseException):
                self._error = item
                raise item
            assert isinstance(item, bytes)
            self._piece = memoryview(item)
        n = min(len(buffer), len(self._piece))
        buffer[:n] = self._piece[:n]
        self._piece = self._piece[n:]
        return n
