"""HashSpill: exact duplicates among hashes kept mostly on disk, with memory that does not grow."""

from __future__ import annotations

import os
import tracemalloc
from array import array

import pytest

from syncd.contract.idspill import BLOCK, PARTITIONS, HashSpill


def _in_partition(partition: int, k: int) -> int:
    """The k-th distinct hash whose low byte is `partition` (k may be negative)."""
    return k * PARTITIONS + partition


def _spread(k: int) -> int:
    """Distinct signed 64-bit hashes for distinct k < 2**64, over all partitions (an odd multiplier)."""
    return k * 0x9E3779B97F4A7C15 % 2**64 - 2**63


def test_duplicates_across_blocks_and_the_buffer() -> None:
    spill = HashSpill()
    first, second = [_in_partition(7, k) for k in range(BLOCK)], [_in_partition(7, -k - 1) for k in range(BLOCK)]
    a, b, c = first[0], first[-1], second[100]
    for h in first:  # block 0
        spill.add(h)
    for h in second[:-1]:  # block 1: `a` again, in place of second's last hash
        spill.add(h)
    spill.add(a)
    for h in (b, 12345 * PARTITIONS + 7, c):  # the buffer: `b` from block 0, `c` from block 1
        spill.add(h)
    spill.add(_in_partition(200, -9))
    spill.add(_in_partition(200, -9))  # a pair in another partition that never reaches the disk
    assert spill._file is not None and len(spill._blocks[7]) == 2 and len(spill._buffers[7]) == 3
    assert spill.colliding() == {a, b, c, _in_partition(200, -9)}
    spill.close()


def test_many_blocks_of_one_partition() -> None:
    spill = HashSpill(block=3)
    for k in range(100):
        spill.add(_in_partition(0, k))
    spill.add(_in_partition(0, 0))
    spill.add(_in_partition(0, 99))
    assert len(spill._blocks[0]) == 34
    assert spill.colliding() == {_in_partition(0, 0), _in_partition(0, 99)}
    assert spill.colliding() == {_in_partition(0, 0), _in_partition(0, 99)}  # reading does not consume
    spill.close()


def test_distinct_hashes_collide_nowhere() -> None:
    spill = HashSpill()
    extremes = [-(2**63), 2**63 - 1, -1, 0, 1, -256, 256]
    # Three blocks' worth that all share the low byte 0x80, half of them negative.
    shared = [_in_partition(0x80, k) for k in range(-(3 * BLOCK) // 2, 3 * BLOCK // 2)]
    spread = [_spread(k) for k in range(1, 50_000)]
    hashes = extremes + shared + spread
    assert len(set(hashes)) == len(hashes)
    for h in hashes:
        spill.add(h)
    assert spill._file is not None and len(spill._blocks[0x80]) >= 3
    assert spill.colliding() == set()
    spill.close()


def test_a_small_set_never_touches_the_disk() -> None:
    spill = HashSpill()
    hashes = [_spread(k) for k in range(1, 5_000)]  # ~20 per partition
    for h in hashes:
        spill.add(h)
    spill.add(hashes[17])
    assert spill._file is None
    assert spill.colliding() == {hashes[17]}
    assert spill._file is None
    spill.close()


def test_close_releases_the_file() -> None:
    spill = HashSpill(block=1)
    spill.add(5)
    file = spill._file
    assert file is not None and not file.closed
    spill.close()
    assert file.closed and spill._file is None
    spill.close()  # twice is harmless
    with pytest.raises(ValueError, match="closed"):
        spill.colliding()
    with pytest.raises(ValueError, match="closed"):
        spill.add(5)


def test_memory_stays_bounded() -> None:
    n = 2_000_000
    hashes = array("q", map(_spread, range(n)))  # made before tracing starts: the test needs them, syncd not
    tracemalloc.start()
    try:
        in_memory = array("q", hashes)
        plain = tracemalloc.get_traced_memory()[1]
        del in_memory
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        spill = HashSpill()
        add = spill.add
        for h in hashes:
            add(h)
        duplicate = hashes[17]
        add(duplicate)
        assert spill.colliding() == {duplicate}
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert plain >= n * 8  # what keeping every hash in memory costs, as tracemalloc sees it: 16 MB
    assert peak < 4 * 2**20, peak  # measured: 1.2 MB, adding and checking included
    assert spill._file is not None
    assert os.fstat(spill._file.fileno()).st_size >= (n - PARTITIONS * BLOCK) * 8  # all but the buffers
    spill.close()


def test_add_all_finds_what_add_finds() -> None:
    # add_all is add() per counterparty's ids: the same duplicates, through full blocks on disk too.
    hashes = [_spread(k) for k in range(20 * PARTITIONS)] + [_spread(5), _spread(2 * BLOCK + 1)]
    one, many = HashSpill(block=4), HashSpill(block=4)
    for h in hashes:
        one.add(h)
    for start in range(0, len(hashes), 12):
        many.add_all(hashes[start : start + 12])
    assert many._file is not None  # blocks were written
    assert many.colliding() == one.colliding() == {_spread(5), _spread(2 * BLOCK + 1)}
    one.close()
    many.close()
