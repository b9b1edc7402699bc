"""syncd.plumbing.pipe.Growing: a file read while another thread writes it, on the real file system."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from syncd.errors import SourceError
from syncd.plumbing.pipe import Growing


def _write_in_pieces(growing: Growing, part: Path, final: Path, data: bytes, piece: int,
                     go_on: threading.Event | None = None) -> None:
    with part.open("wb") as out:
        for start in range(0, len(data), piece):
            out.write(data[start : start + piece])
            out.flush()
            growing.written(part, min(start + piece, len(data)))
            if go_on is not None:
                go_on.wait()
    os.replace(part, final)
    growing.close(final=final)


def test_the_reader_gets_every_byte_in_order_as_it_is_written(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    growing = Growing()
    writer = threading.Thread(target=_write_in_pieces,
                              args=(growing, tmp_path / ".x.part", tmp_path / "x", data, 65536))
    reader = growing.reader(buffer_size=100_000)
    writer.start()
    got = b"".join(iter(lambda: reader.read(70_000), b""))
    writer.join()
    assert got == data
    assert reader.read() == b""  # the end stays the end


def test_a_reader_that_starts_after_the_rename_reads_the_final_file(tmp_path: Path) -> None:
    # The download reported its part file, then finished and renamed it before the first read.
    data = os.urandom(500_000)
    growing = Growing()
    _write_in_pieces(growing, tmp_path / ".x.part", tmp_path / "x", data, 100_000)
    assert not (tmp_path / ".x.part").exists()
    assert growing.reader().read() == data


def test_a_reader_waits_for_bytes_not_yet_written(tmp_path: Path) -> None:
    data = b"a" * 1000 + b"b" * 1000
    growing = Growing()
    go_on = threading.Event()
    writer = threading.Thread(target=_write_in_pieces,
                              args=(growing, tmp_path / ".x.part", tmp_path / "x", data, 1000, go_on))
    writer.start()
    reader = growing.reader()
    assert reader.read1(5000) == b"a" * 1000  # all there is so far; the writer is held after its first piece
    go_on.set()
    assert reader.read() == b"b" * 1000
    writer.join()


def test_a_failed_download_is_never_a_quiet_end(tmp_path: Path) -> None:
    part = tmp_path / ".x.part"
    part.write_bytes(b"<SettlementsExport>")
    growing = Growing()
    growing.written(part, 19)
    reader = growing.reader()
    assert reader.read(19) == b"<SettlementsExport>"
    growing.close(SourceError("the connection was lost"))
    for _ in range(2):  # raised again by every later read, never b""
        with pytest.raises(SourceError, match="the connection was lost"):
            reader.read(1)


def test_bytes_reported_but_missing_on_disk_raise(tmp_path: Path) -> None:
    part = tmp_path / ".x.part"
    part.write_bytes(b"12345")
    growing = Growing()
    growing.written(part, 10)  # says 10, the file holds 5
    reader = growing.reader(buffer_size=4)
    assert reader.read(5) == b"12345"
    with pytest.raises(OSError, match="shorter than the 10 bytes it reported"):
        reader.read(1)
