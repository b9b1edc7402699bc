"""The daemon's watch: list the source every `schedule.watch` and start a run as soon as a new complete
export is there, instead of waiting for the next scheduled run.

The watch keeps one source connection open between its listings (an SFTP session costs a key exchange
and a login; a listing on an open one is one directory read) and reconnects when it drops. It only
lists, through the `Source` interface, so it works for every source type; everything else (fetching,
checking, applying, moving) is the run's, started through `apply`.

A file is "new" when its (name, size, mtime) was not in the listing that last started a run which ended
without a run-level error: a file kept on the source after it was applied (`on_success = "keep"`) or
rejected does not start run after run, and a run that failed (database down, source gone) is retried at
the next listing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import suppress

from syncd.config import Config, SourceConfig
from syncd.errors import SourceError
from syncd.sources import Listing, Source, open_source

log = logging.getLogger("syncd.watch")

Key = tuple[str, int, float]


class Watcher:
    """A thread that lists the source every `cfg().schedule.watch_every()` seconds and calls `apply()`
    when a new complete file is listed. `apply()` returns True when the run it started ended without a
    run-level error. `wake()` makes it read the configuration again at once (after a reload)."""

    def __init__(self, cfg: Callable[[], Config], apply: Callable[[], bool], stopping: threading.Event) -> None:
        self._cfg = cfg
        self._apply = apply
        self._stopping = stopping
        self._wake = threading.Event()
        self._source: Source | None = None
        self._source_cfg: SourceConfig | None = None
        self._seen: set[Key] = set()
        self._failing = False
        self.listings = 0  # listings made, for the freshness benchmark and the logs
        self.connects = 0
        self.triggered = 0
        self._thread = threading.Thread(target=self._loop, name="syncd-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the loop (its own thread)

    def _loop(self) -> None:
        try:
            # The daemon's first run starts with it: the first listing comes one period later.
            self._sleep(self._cfg().schedule.watch_every())
            while not self._stopping.is_set():
                every = self._cfg().schedule.watch_every()
                if every is not None:
                    try:
                        self.check()
                    except Exception:  # the watch must outlive any one listing or run
                        log.exception("watch: the check failed unexpectedly (please report it)")
                else:
                    self._close()
                self._sleep(every)
        finally:
            self._close()

    def _sleep(self, seconds: float | None) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def check(self) -> bool:
        """One listing; start a run when it shows a new complete file. True when a run was started."""
        listing = self._list()
        if listing is None:
            return False
        ready = {(f.name, f.size, f.mtime) for f in listing.ready}
        new = sorted(ready - self._seen)
        self._seen &= ready  # forget what is gone, so the set stays as small as the folder
        if not new or self._stopping.is_set():
            return False
        names = ", ".join(n for n, _, _ in new[:3]) + (f" and {len(new) - 3} more" if len(new) > 3 else "")
        log.info("watch: new complete export %s: starting a run now", names)
        self.triggered += 1
        if self._apply():
            self._seen |= ready
        return True

    def _list(self) -> Listing | None:
        """The listing, on the kept connection; one reconnect at once if it dropped. None when the source
        cannot be listed (said once, until it answers again)."""
        cfg = self._cfg().source
        for attempt in (1, 2):
            try:
                source = self._connect(cfg)
                listing = source.list()
            except SourceError as exc:
                self._close()
                if attempt == 2:
                    self._failed(str(exc))
                continue
            except Exception as exc:  # a source library's own error: the watch goes on, the run reports it
                self._close()
                self._failed(f"{type(exc).__name__}: {exc}")
                return None
            self.listings += 1
            if self._failing:
                log.info("watch: the source answers again")
                self._failing = False
            return listing
        return None

    def _failed(self, why: str) -> None:
        if not self._failing:
            log.warning("watch: cannot list the source (%s); trying again at each watch period", why)
        self._failing = True

    def _connect(self, cfg: SourceConfig) -> Source:
        if self._source is not None and self._source_cfg == cfg:
            return self._source
        self._close()
        source = open_source(cfg)
        source.__enter__()
        self._source, self._source_cfg = source, cfg
        self.connects += 1
        if self.connects > 1:
            log.info("watch: connected to %s again", source.describe())
        return source

    def _close(self) -> None:
        source, self._source, self._source_cfg = self._source, None, None
        if source is not None:
            with suppress(Exception):  # it may be half dead already: that is why it is closed
                source.__exit__(None, None, None)
