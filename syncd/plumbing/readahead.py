"""Run an iterator in a thread of its own, a bounded distance ahead of its consumer.

The writer spends much of a file waiting for the database; lxml and ijson parse in C and let go of
the GIL for much of their work, so reading the next counterparties meanwhile overlaps the two on a
2-core machine. Memory stays bounded: at most `depth` chunks of `chunk` items wait in the queue.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_ITEMS, _END, _ERROR = 0, 1, 2


class ReadAhead(Generic[T]):
    """Iterate over it like the original; exceptions from the producer surface at the same place.

    Use as a context manager so the producer thread is stopped when the consumer leaves early.
    """

    def __init__(self, source: Iterable[T], *, chunk: int = 200, depth: int = 8):
        self._queue: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._chunk = chunk
        self._thread = threading.Thread(target=self._produce, args=(iter(source),), name="syncd-reader", daemon=True)
        self._started = False

    def _put(self, item: tuple[int, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, it: Iterator[T]) -> None:
        buf: list[T] = []
        try:
            for item in it:
                buf.append(item)
                if len(buf) >= self._chunk:
                    if not self._put((_ITEMS, buf)):
                        return
                    buf = []
            if buf and not self._put((_ITEMS, buf)):
                return
            self._put((_END, None))
        except BaseException as exc:  # handed to the consumer, raised there, after the items read before it
            if not buf or self._put((_ITEMS, buf)):
                self._put((_ERROR, exc))

    def __iter__(self) -> Iterator[T]:
        if not self._started:
            self._started = True
            self._thread.start()
        while True:
            kind, value = self._queue.get()
            if kind == _ITEMS:
                yield from value  # type: ignore[misc]
            elif kind == _END:
                return
            else:
                raise value  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        if self._started:
            self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
