"""The read-ahead thread hands over every item in order, raises the producer's error where it happened,
and stops when the consumer leaves early."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from syncd.plumbing.readahead import ReadAhead


def test_items_arrive_in_order() -> None:
    with ReadAhead(range(1005), chunk=100, depth=2) as ra:
        assert list(ra) == list(range(1005))


def test_error_after_some_items_surfaces_after_them() -> None:
    def gen() -> Iterator[int]:
        yield from range(250)
        raise ValueError("bad record #251")

    got: list[int] = []
    with ReadAhead(gen(), chunk=100) as ra, pytest.raises(ValueError, match="bad record #251"):
        for item in ra:
            got.append(item)
    assert got == list(range(250))


def test_consumer_leaving_early_stops_the_producer() -> None:
    produced = 0

    def endless() -> Iterator[int]:
        nonlocal produced
        while True:
            produced += 1
            yield produced

    ra = ReadAhead(endless(), chunk=10, depth=2)
    with ra:
        for item in ra:
            if item == 5:
                break
    assert not any(t.name == "syncd-reader" and t.is_alive() for t in threading.enumerate())
    assert produced <= 10 * (2 + 2)  # at most the queue, one chunk being built and one being put
