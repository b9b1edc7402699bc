"""The 64-bit hashes of an export's ids, mostly on disk, and the ones seen more than once.

`syncd.contract.checks.Checker` must find ids that occur twice anywhere in a file of millions of ids.
Even at 8 bytes a hash, keeping them all in memory made the reader's memory grow with the export
(31 MB of hashes for 3.9 million ids), and an export may grow without bound. So a `HashSpill` keeps
a small buffer per partition and writes each full buffer as a block to one anonymous temporary
file. Partitions are chosen by the hash's low byte, so two equal hashes always meet in the same
partition, and the check reads back one partition at a time: memory is bounded by the buffers plus
one partition (1/256 of the hashes), not by the file.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections.abc import Iterable
from itertools import pairwise
from typing import IO, Final

from syncd.errors import ConfigError

PARTITIONS: Final = 256
# 256 partitions × 256 hashes × 8 bytes: at most 512 KiB of buffers per spill (a Checker has three),
# while the blocks stay large enough that the file sees few writes and reads.
BLOCK: Final = 256
_ITEMSIZE: Final = array("q").itemsize


class HashSpill:
    """Signed 64-bit hashes, added one at a time; `colliding()` gives those added more than once."""

    def __init__(self, block: int = BLOCK) -> None:
        """`block`: hashes per partition kept in memory before they are written; tests make it tiny."""
        if block < 1:
            raise ValueError(f"block must be at least 1, not {block}")
        self._block = block
        self._block_bytes = block * _ITEMSIZE
        self._buffers = [array("q") for _ in range(PARTITIONS)]
        # Where each partition's blocks start in the file: the only memory that grows with the
        # file, 8 bytes per block (31 KB per million hashes at the default block).
        self._blocks = [array("q") for _ in range(PARTITIONS)]
        self._file: IO[bytes] | None = None
        self._end = 0
        self._closed = False

    def add(self, h: int) -> None:
        buffer = self._buffers[h & 0xFF]
        buffer.append(h)
        if len(buffer) >= self._block:
            self._flush(h & 0xFF, buffer)

    def add_all(self, hashes: Iterable[int]) -> None:
        """add() for each; one call per counterparty rather than per id."""
        buffers, block = self._buffers, self._block
        for h in hashes:
            buffer = buffers[h & 0xFF]
            buffer.append(h)
            if len(buffer) >= block:
                self._flush(h & 0xFF, buffer)

    def _flush(self, partition: int, buffer: array[int]) -> None:
        if self._closed:
            raise ValueError("HashSpill is closed")
        try:
            if self._file is None:
                # Opened at the first full block, so a small export never touches the disk. Anonymous
                # (in TMPDIR, never linked), so nothing is left behind even if the process is killed.
                # Written through a 1 MiB buffer: each write that reaches the OS lets go of the GIL,
                # and the reader thread then waits for the writer's threads to hand it back.
                self._file = tempfile.TemporaryFile(buffering=1 << 20)  # noqa: SIM115 - open until close()
            self._file.write(buffer)
        except OSError as exc:
            raise _disk_error(exc) from None
        self._blocks[partition].append(self._end)
        self._end += self._block_bytes
        del buffer[:]

    def colliding(self) -> set[int]:
        """The hashes added more than once (each once), found one partition at a time."""
        if self._closed:
            raise ValueError("HashSpill is closed")
        fd = -1
        if self._file is not None:
            try:
                self._file.flush()  # the blocks are read below the file object's buffer, with pread
            except OSError as exc:
                raise _disk_error(exc) from None
            fd = self._file.fileno()
        found: set[int] = set()
        for buffer, blocks in zip(self._buffers, self._blocks, strict=True):
            if not blocks:
                if len(buffer) < 2:
                    continue
                hashes = buffer
            else:
                size = self._block_bytes
                hashes = array("q")
                for offset in blocks:
                    data = os.pread(fd, size, offset)
                    if len(data) != size:
                        raise OSError(f"the hash spill file is short at offset {offset}")
                    hashes.frombytes(data)
                hashes.extend(buffer)
            ordered = sorted(hashes)
            found.update(a for a, b in pairwise(ordered) if a == b)
        return found

    def close(self) -> None:
        """Release the temporary file; the spill cannot be used afterwards. Safe to call twice."""
        self._closed = True
        if self._file is not None:
            file, self._file = self._file, None
            file.close()


def _disk_error(exc: OSError) -> ConfigError:
    # Not the export's fault: the run stops with a config error and the file is tried again.
    return ConfigError(
        f"cannot write the id check's temporary file in {tempfile.gettempdir()}: {exc.strerror or exc}; "
        "free space there or point TMPDIR at a disk with room (it takes ~8 bytes per id)"
    )
