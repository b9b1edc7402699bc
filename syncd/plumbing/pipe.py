"""A download read while it is written: the parser follows the file as the downloading thread grows it.

With source.apply_while_downloading, the runner applies a large export while it downloads: the
download reports each size it has put on disk (Source.fetch's `written`), and the export reader
reads `Growing.reader()` as if it were the whole file. A read waits for bytes that are not there
yet; the stream ends only where the download ends whole; if the download fails, the next read
raises its error, so the apply stops there and its transaction is rolled back.

The download is never held back by the parse: it runs at the link's speed and the parser reads
what it wrote from the page cache. So a fast link is done with the SFTP session in seconds, and a
slow one has the parse and the writer working meanwhile. Memory does not depend on either speed.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path


class Growing:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._path: Path | None = None
        self._size = 0
        self._ended = False
        self._error: BaseException | None = None

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    # -- the downloading thread

    def written(self, part: Path, size: int) -> None:
        """The first `size` bytes are in `part`."""
        with self._changed:
            self._path, self._size = part, size
            self._changed.notify_all()

    def close(self, error: BaseException | None = None, *, final: Path | None = None) -> None:
        """The download ended: whole, now at `final`, or with `error`, which every later read raises."""
        with self._changed:
            self._ended, self._error = True, error
            if final is not None:
                self._path = final
            self._changed.notify_all()

    # -- the reading thread

    def reader(self, buffer_size: int = 1 << 20) -> io.BufferedReader:
        """The file's bytes in order; read() returns b"" once the download has ended whole."""
        return io.BufferedReader(_Follower(self), buffer_size=buffer_size)

    def _wait(self, offset: int) -> tuple[Path | None, int]:
        """(path, size) once there are bytes past `offset` or the download has ended."""
        with self._changed:
            self._changed.wait_for(lambda: self._size > offset or self._ended)
            if self._error is not None:
                raise self._error
            return self._path, self._size

    def _renamed(self, path: Path) -> Path:
        """The path to open after `path` vanished: the download renamed it to its final name."""
        with self._changed:
            self._changed.wait_for(lambda: self._ended)
            if self._error is not None:
                raise self._error
            assert self._path is not None and self._path != path
            return self._path


class _Follower(io.RawIOBase):
    def __init__(self, growing: Growing) -> None:
        self._growing = growing
        self._fd = -1
        self._offset = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._offset  # how much of a compressed download was used (syncd.formats: the expansion ratio)

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        path, size = self._growing._wait(self._offset)
        if self._offset >= size:
            return 0  # ended whole, all read
        if self._fd < 0:
            assert path is not None
            try:
                self._fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # renamed between the size report and this open
                self._fd = os.open(self._growing._renamed(path), os.O_RDONLY)
        data = os.pread(self._fd, min(len(buffer), size - self._offset), self._offset)
        if not data:  # never a quiet end: the download said these bytes were written
            raise OSError(f"the download is shorter than the {size} bytes it reported")
        buffer[: len(data)] = data
        self._offset += len(data)
        return len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()
