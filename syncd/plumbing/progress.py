"""Progress of big files on a terminal: download bytes and applied counterparties, on one line.

Only `run-once` on a TTY shows it; piped output, cron mail and the journal never see it.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def download(self, name: str, done: int, total: int) -> None: ...

    def apply(self, name: str, counterparties: int, downloaded: tuple[int, int] | None = None) -> None: ...

    def clear(self) -> None: ...


class TerminalProgress:
    """Redraws one status line at most `rate` times a second; `clear()` before printing anything else."""

    def __init__(self, stream: TextIO = sys.stderr, rate: float = 5.0):
        self.stream = stream
        self.interval = 1.0 / rate
        self._last = 0.0
        self._shown = False
        self._phase = ""

    def _draw(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        # A new phase (the download of a file, then its apply) shows at once, however soon it follows.
        phase = text.partition(":")[0]
        if not force and phase == self._phase and now - self._last < self.interval:
            return
        self._phase = phase
        self._last = now
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._shown = True

    def download(self, name: str, done: int, total: int) -> None:
        share = f"{done * 100 // total}%" if total else ""
        self._draw(f"downloading {name}: {share} ({done / 1e6:.1f} of {total / 1e6:.1f} MB)", force=done == total)

    def apply(self, name: str, counterparties: int, downloaded: tuple[int, int] | None = None) -> None:
        """`downloaded`: (bytes, of total) for a file applied while it downloads."""
        text = f"applying {name}: {counterparties:,} counterparties".replace(",", " ")
        if downloaded is not None:
            text += f" ({downloaded[0] / 1e6:.1f} of {downloaded[1] / 1e6:.1f} MB downloaded)"
        self._draw(text)

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
