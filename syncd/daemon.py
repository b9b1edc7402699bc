"""`syncd daemon`: run_once on a schedule, in the foreground, under systemd or by hand.

Threads: APScheduler's BackgroundScheduler fires the job in its worker thread; the main thread
only waits for signals and supervises. Signal handlers merely note the signal (a wakeup fd
interrupts the main thread's wait), so reload and shutdown run in the main thread, never inside
the scheduler's threads (APScheduler installs no handlers, and shutting it down from its own
threads deadlocks).

- SIGTERM/SIGINT: no new files are taken (Runner.should_stop), the current file finishes or
  rolls back; after STOP_GRACE seconds its connections are cut. Exit code 0.
- SIGHUP: the configuration is read again; a bad one is refused with a message and the running
  one kept; the job is rescheduled when [schedule] changed.
- schedule.run_timeout: a run that overstays it is cut: should_stop is set and its database and
  SFTP connections are shut from the main thread, which makes a blocked socket read fail at
  once; the run ends with an error and the daemon goes on. If even that does not end it within
  CUT_GRACE, the watchdog pings stop, so systemd (WatchdogSec) restarts the service.
- schedule.watch (syncd.run.watch): between runs a thread lists the source every `watch` on a
  connection it keeps open and starts a run at once when a new complete export is there (trigger
  "watch"); runs never overlap (one mutex for the scheduled job and the watch's runs).
- After every run its objects are freed at once and the heap it used goes back to the system
  (memory.release_run_memory), so an idle daemon's RSS stays flat run after run.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import math
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, event

from syncd import __version__
from syncd import config as config_mod
from syncd.admin.metrics import Metrics
from syncd.config import Config, ScheduleConfig
from syncd.errors import ConfigError
from syncd.plumbing import logs
from syncd.plumbing.db import database_url, make_engine
from syncd.plumbing.lock import shutdown_dbapi
from syncd.plumbing.memory import release_run_memory
from syncd.plumbing.notify import Notifier, watchdog_interval
from syncd.run.watch import Watcher

if TYPE_CHECKING:
    from syncd.run import FileOutcome, Runner, RunResult

log = logging.getLogger("syncd.daemon")

JOB_ID = "sync"
STOP_GRACE = 30.0  # seconds the current file gets to finish after SIGTERM (TimeoutStopSec is 60)
CUT_GRACE = 30.0  # seconds a cut run gets to wind down before we stop feeding the watchdog
TICK = 1.0  # the main loop's longest sleep


def make_trigger(schedule: ScheduleConfig) -> BaseTrigger:
    """The APScheduler trigger for [schedule]: a crontab line, or an interval with optional jitter."""
    if schedule.cron:
        try:
            return CronTrigger.from_crontab(schedule.cron)
        except ValueError as exc:
            raise ConfigError(f"schedule.cron {schedule.cron!r}: {exc}") from None
    assert schedule.interval is not None
    jitter = int(schedule.jitter.total_seconds()) or None
    return IntervalTrigger(seconds=schedule.interval.total_seconds(), jitter=jitter)


def _misfire(schedule: ScheduleConfig) -> int:
    # APScheduler's default grace is 1 s: a run delayed a little would be dropped with only a log line.
    return max(1, int(schedule.misfire_grace.total_seconds()))


@dataclass
class _Run:
    """The run in progress, as the main thread sees it."""

    started: float  # time.monotonic()
    deadline: float
    timeout: float
    cut: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    runner: Runner | None = None
    connections: set[Any] = field(default_factory=set)  # DB-API connections checked out right now


class Daemon:
    def __init__(self, cfg: Config, *, log_format: logs.LogFormat = "text", log_level: int = logging.INFO):
        self.cfg = cfg
        self.log_format: logs.LogFormat = log_format
        self.log_level = log_level
        self.notifier = Notifier()
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self.scheduler: BackgroundScheduler | None = None
        self.watcher: Watcher | None = None
        self._runs = threading.Lock()  # one run at a time: the scheduled job's or the watch's
        self._current: _Run | None = None
        self._pending: list[int] = []  # signals noted by the handlers, handled by the main loop
        self._stuck_reported = False
        self.last = "no run yet"

    # ---------------------------------------------------------------- the job (scheduler thread)

    def _job(self, trigger: str = "daemon") -> bool:
        """One run (the scheduler's, or the watch's with trigger "watch"); True when it ended without a
        run-level error."""
        with self._runs:
            ok = self._sync(trigger)
        # Only now, with the run's frame gone, is all it made unreachable.
        release_run_memory()
        return ok

    def _sync(self, trigger: str) -> bool:
        if self.stopping.is_set():
            return False
        cfg = self.cfg
        timeout = cfg.schedule.run_timeout.total_seconds()
        now = time.monotonic()
        run = _Run(started=now, deadline=now + timeout, timeout=timeout)
        engine = make_engine(cfg.database)
        self.notifier.status(f"syncing since {datetime.now():%H:%M:%S}; last: {self.last}")
        result: RunResult | None = None
        try:
            result = self._execute(run, engine, trigger=trigger, on_file=_log_file)
        except Exception:
            log.exception("the run failed unexpectedly (please report it)")
        finally:
            engine.dispose()
        if result is None:
            return False
        self._report(result, run)
        return result.error is None

    def _execute(self, run: _Run, engine: Engine, **kwargs: Any) -> RunResult:
        """run_once as the current run: it stops taking files when asked (should_stop), and its
        connections are tracked so that _cut can shut them. Used by the daemon's job and by
        `run-once` (run_once_stoppable)."""
        from syncd.run import run_once

        self._track(engine, run)
        self._current = run

        def should_stop() -> bool:
            return self.stopping.is_set() or run.cut.is_set()

        def on_start(runner: Runner) -> None:
            run.runner = runner

        try:
            return run_once(self.cfg, engine=engine, should_stop=should_stop, on_start=on_start, **kwargs)
        finally:
            self._current = None
            run.done.set()
            # The run and its Runner refer to each other (run.runner, the runner's should_stop): unlinked,
            # the Runner and every link of the site it loaded go as soon as this frame ends.
            run.runner = None

    def _track(self, engine: Engine, run: _Run) -> None:
        def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
            run.connections.add(dbapi_conn)

        def checkin(dbapi_conn: Any, _record: Any) -> None:
            run.connections.discard(dbapi_conn)

        event.listen(engine, "checkout", checkout)
        event.listen(engine, "checkin", checkin)

    def _report(self, result: RunResult, run: _Run) -> None:
        from syncd.run.record import run_summary

        took = (result.finished - result.started).total_seconds() if result.finished else 0.0
        self.metrics.observe(result)
        summary = f"{run_summary(result)} in {took:.1f}s (exit {result.exit_code})"
        stamp = f"{datetime.now():%Y-%m-%d %H:%M:%S}"
        if run.cut.is_set() and not self.stopping.is_set():
            self.metrics.deadline.inc()
            log.error("run cut after %.0fs (schedule.run_timeout): %s; %s", run.timeout, result.error, summary)
            self.last = f"{stamp}: cut at run_timeout ({run.timeout:.0f}s): {result.error}"
        elif result.exit_code == 8:
            log.warning("run skipped: %s", result.error)
            self.last = f"{stamp}: skipped, another run holds the lock"
        elif result.error is not None:
            log.error("run failed: %s; %s", result.error, summary)
            self.last = f"{stamp}: failed (exit {result.exit_code}): {result.error}"
        else:
            level = logging.INFO if result.exit_code == 0 else logging.WARNING
            log.log(level, "run finished: %s", summary)
            self.last = f"{stamp}: {summary}"
        self._idle_status()

    def _idle_status(self) -> None:
        nxt = ""
        job = self.scheduler.get_job(JOB_ID) if self.scheduler is not None else None
        if job is not None and job.next_run_time is not None:
            nxt = f"; next run {job.next_run_time:%H:%M:%S}"
        every = self.cfg.schedule.watch_every()
        watching = f"; watching the source every {every:g}s" if every is not None else ""
        self.notifier.status(f"idle; last: {self.last}{nxt}{watching}")

    # ---------------------------------------------------------------- cutting a run (main thread)

    def _cut(self, run: _Run, why: str) -> None:
        if run.cut.is_set():
            return
        run.cut.set()
        log.warning("cutting the current run: %s", why)
        runner = run.runner
        if runner is not None:
            if runner.lock is not None:
                runner.lock.abort()
            close: Callable[[], None] | None = getattr(runner.source, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()  # closing the SFTP transport makes a blocked read in the run's thread fail
        for dbapi_conn in list(run.connections):
            shutdown_dbapi(dbapi_conn)

    def _supervise(self) -> bool:
        """Cut a run past its deadline; False when a cut run refuses to end (the watchdog should fire)."""
        run = self._current
        if run is None:
            self._stuck_reported = False
            return True
        now = time.monotonic()
        if now > run.deadline and not run.cut.is_set():
            self.notifier.status(f"cutting a run that exceeded run_timeout ({run.timeout:.0f}s)")
            self._cut(run, f"it exceeded schedule.run_timeout ({run.timeout:.0f}s)")
        if run.cut.is_set() and now > run.deadline + CUT_GRACE:
            if not self._stuck_reported:
                log.critical("a run cut at its deadline is still stuck; no more watchdog pings (systemd restarts us)")
                self.notifier.status("stuck: a run could not be cut; waiting for the watchdog restart")
                self._stuck_reported = True
            return False
        return True

    # ---------------------------------------------------------------- configuration

    def _reload(self) -> None:
        path = self.cfg.path
        try:
            new = config_mod.load(path)
            trigger = make_trigger(new.schedule)
            database_url(new.database)  # a password_env naming an unset variable: refused, as at start
        except ConfigError as exc:
            log.error("configuration reload refused, keeping the running one: %s", exc)
            self.notifier.status(f"reload refused ({exc}); last: {self.last}")
            return
        old, self.cfg = self.cfg, new
        logs.setup(level=self.log_level, fmt=self.log_format, cfg=new)
        if self.scheduler is not None and new.schedule != old.schedule:
            self.scheduler.modify_job(JOB_ID, misfire_grace_time=_misfire(new.schedule))
            self.scheduler.reschedule_job(JOB_ID, trigger=trigger)
            log.info("schedule changed: %s", describe_schedule(new.schedule))
        if self.watcher is not None:
            self.watcher.wake()  # a changed watch period or source takes effect now
        if new.metrics != old.metrics:
            log.warning("metrics.listen changed to %s: it takes effect after a restart", new.metrics.listen)
        log.info("configuration reloaded from %s", path)
        self._idle_status()

    # ---------------------------------------------------------------- main loop (main thread)

    def _install_signals(self) -> socket.socket:
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        self._wakeup = (r, w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        # `kill -USR1 <pid>`: every thread's stack on stderr (the journal), to see where a run hangs.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        return r

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._pending.append(signum)  # nothing else: this runs between arbitrary bytecodes of the main thread

    def _wait(self, r: socket.socket, timeout: float) -> list[int]:
        with contextlib.suppress(InterruptedError):
            select.select([r], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while r.recv(256):
                pass
        got, self._pending = self._pending, []
        return got

    def _scheduler_alive(self) -> bool:
        s = self.scheduler
        # BackgroundScheduler keeps its loop thread in _thread; a dead loop means no run will ever fire.
        thread = getattr(s, "_thread", None)
        return s is not None and s.running and thread is not None and thread.is_alive()

    def serve(self) -> int:
        log.info("syncd %s starting (pid %d, config %s)", __version__, os.getpid(), self.cfg.path or "-")
        wake = self._install_signals()
        if self.cfg.metrics.listen:
            try:
                self.metrics.serve(self.cfg.metrics.listen)
            except OSError as exc:
                raise ConfigError(f"metrics.listen {self.cfg.metrics.listen}: {exc.strerror}") from None
            log.info("metrics on http://%s/metrics", self.cfg.metrics.listen)
        engine = make_engine(self.cfg.database)
        self.metrics.load_history(engine)
        engine.dispose()
        self.metrics.up.set(1)

        scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        scheduler.add_job(
            self._job, make_trigger(self.cfg.schedule), id=JOB_ID, name="sync",
            misfire_grace_time=_misfire(self.cfg.schedule), next_run_time=datetime.now().astimezone(),
        )
        self.scheduler = scheduler
        scheduler.start()
        self.watcher = Watcher(lambda: self.cfg, lambda: self._job("watch"), self.stopping)
        self.watcher.start()
        log.info("syncd daemon started (pid %d): %s", os.getpid(), describe_schedule(self.cfg.schedule))
        self.notifier.ready(f"started; {describe_schedule(self.cfg.schedule)}")

        ping_every = watchdog_interval()
        next_ping = 0.0
        tick = min(TICK, ping_every) if ping_every else TICK
        while True:
            got = self._wait(wake, tick)
            if signal.SIGTERM in got or signal.SIGINT in got:
                break
            if signal.SIGHUP in got:
                self._reload()
            healthy = self._supervise() and self._scheduler_alive() and self.watcher.alive()
            if ping_every and healthy and time.monotonic() >= next_ping:
                self.notifier.watchdog()
                next_ping = time.monotonic() + ping_every
        return self._shutdown()

    def _shutdown(self) -> int:
        log.info("stopping: no new files are taken")
        self.notifier.stopping("stopping: finishing the current file")
        self.stopping.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        self._stop_run()
        if self.watcher is not None:
            self.watcher.stop()  # it closes its source connection
        log.info("stopped")
        self.notifier.close()
        return 0

    def _stop_run(self) -> None:
        """No new files; the current run's file gets STOP_GRACE to finish, then it is cut (its
        transaction rolls back). Returns once no run is going on."""
        self.stopping.set()
        run = self._current
        if run is not None and not run.done.wait(STOP_GRACE):
            self._cut(run, f"it did not finish within {STOP_GRACE:.0f}s of the stop request")
            run.done.wait(5)
        if run is not None and not run.done.is_set():
            log.error("the run did not stop; exiting anyway (the database rolls its transaction back)")
            logging.shutdown()
            os._exit(0)  # the run's thread is stuck in a call that no cut reached: exit cannot join it


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_once_stoppable(cfg: Config, *, engine: Engine, **kwargs: Any) -> RunResult:
    """`syncd run-once` with the daemon's stop, for a timer's `systemctl stop`, a shutdown or Ctrl-C.

    As in the daemon, the run goes on in a thread of its own while the main thread waits for
    signals: SIGTERM, SIGINT or SIGHUP take no new file, let the current one finish (up to
    STOP_GRACE), then cut it (its transaction rolls back). A run cut so has no error of its own:
    what it did not apply stays on the source for the next run.
    """
    from syncd.run import run_once

    if threading.current_thread() is not threading.main_thread():  # signals reach only the main thread
        return run_once(cfg, engine=engine, **kwargs)
    d = Daemon(cfg)
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    wake = d._install_signals()
    run = _Run(started=time.monotonic(), deadline=math.inf, timeout=math.inf)
    outcome: list[RunResult] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            outcome.append(d._execute(run, engine, **kwargs))
        except BaseException as exc:  # raised again in the main thread, as without the thread
            failure.append(exc)
        finally:
            with contextlib.suppress(OSError):
                d._wakeup[1].send(b"\0")  # the main thread's wait ends at once

    thread = threading.Thread(target=work, name="syncd-run", daemon=True)
    thread.start()
    try:
        while not run.done.is_set() and thread.is_alive():
            got = [s for s in d._wait(wake, TICK) if s in STOP_SIGNALS]
            if got:
                log.warning("%s: stopping; no new file is taken, the current one has %.0fs to finish, else it "
                            "is cut and rolled back", signal.Signals(got[0]).name, STOP_GRACE)
                d._stop_run()
                break
        thread.join()
    finally:
        _restore_signals(d, before)
    if failure:
        raise failure[0]
    result = outcome[0]
    if run.cut.is_set():
        log.warning("stopped: the file being applied was cut and rolled back (the run's error was the cut: %s); "
                    "it stays on the source for the next run", result.error)
        result.error = None
    return result


def _restore_signals(d: Daemon, before: dict[signal.Signals, Any]) -> None:
    signal.set_wakeup_fd(-1)
    for sig, handler in before.items():
        signal.signal(sig, handler)
    faulthandler.unregister(signal.SIGUSR1)
    for sock in d._wakeup:
        sock.close()


def _log_file(outcome: FileOutcome) -> None:
    if outcome.status == "waiting":
        log.info("waiting %s: %s", outcome.name, outcome.message)


def describe_schedule(s: ScheduleConfig) -> str:
    if s.cron:
        when = f"cron {s.cron!r}"
    else:
        assert s.interval is not None
        when = f"every {s.interval.total_seconds():g}s"
        if s.jitter:
            when += f" (jitter {s.jitter.total_seconds():g}s)"
    text = f"{when}, run_timeout {s.run_timeout.total_seconds():g}s, misfire_grace {s.misfire_grace.total_seconds():g}s"
    every = s.watch_every()
    return text if every is None else f"{text}, watch {every:g}s"


def run_daemon(cfg: Config, *, log_format: logs.LogFormat = "text", log_level: int = logging.INFO) -> int:
    make_trigger(cfg.schedule)  # a bad crontab line is a config error before anything starts
    return Daemon(cfg, log_format=log_format, log_level=log_level).serve()
