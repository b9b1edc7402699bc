"""One sync: list the source, fetch what is complete, and apply each export whole or not at all.

    source.list → fetch → read header → (duplicate | superseded | apply in one transaction) → ledger → finish

A file over 1 MiB is first read to its header (64 KiB): a duplicate or superseded one is not
downloaded at all. With source.apply_while_downloading, the fetch of such a file runs in a thread
while it is applied (syncd.plumbing.pipe), and the transaction commits only after the download ended whole.

The daemon and the CLI only call `run_once`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeVar

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from syncd import ledger
from syncd.bitrix.capacity import Capacity, read_capacity
from syncd.bitrix.hlblock import (
    ApplyCounts,
    ApplyOptions,
    Blocks,
    HeldByGuard,
    apply_export,
    digest_index,
)
from syncd.bitrix.linking import RefreshCounts, refresh_links
from syncd.bitrix.migrate import check_blocks
from syncd.bitrix.schema import block_specs
from syncd.bitrix.users import Linker, check_link_by, load_linker
from syncd.config import Config
from syncd.contract.records import Header
from syncd.errors import (
    DatabaseError,
    ExportError,
    SchemaError,
    SourceError,
    SyncdError,
)
from syncd.formats import open_export, read_header
from syncd.plumbing import statedir
from syncd.plumbing.db import data_error_reason, db_reason, make_engine, safe_url
from syncd.plumbing.lock import RunLock
from syncd.plumbing.memory import bulk_gc
from syncd.plumbing.pipe import Growing
from syncd.plumbing.progress import Progress
from syncd.plumbing.readahead import ReadAhead
from syncd.run import dryrun
from syncd.run.outcome import FileOutcome, RunResult, format_counts, span
from syncd.run.record import record_run
from syncd.sources import RemoteFile, Source, open_source

log = logging.getLogger("syncd.runner")

@dataclass
class _Fetched:
    remote: RemoteFile
    path: Path
    sha256: str  # "" until a file applied while it downloads has finished downloading
    header: Header
    streamed: bool = False  # known from its first bytes; downloaded while it is applied


class _Download:
    """`source.fetch` in a thread of its own; `reader` follows the file as the download writes it."""

    def __init__(self, source: Source, remote: RemoteFile, path: Path) -> None:
        self.growing = Growing()
        self.reader = self.growing.reader()
        self._sha: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(source, remote, path), name="syncd-download",
                                        daemon=True)
        self._thread.start()

    def _run(self, source: Source, remote: RemoteFile, path: Path) -> None:
        try:
            self._sha = source.fetch(remote, path, written=self.growing.written)
        except BaseException as exc:  # handed to the reader and to finish()
            self._error = exc
            self.growing.close(exc)
        else:
            self.growing.close(final=path)

    def finish(self) -> str:
        """Wait for the download's end and return its sha256; raise what it failed with."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._sha is not None
        return self._sha


class _State:
    """The state folder: downloads in progress, and archives of applied and rejected files."""

    def __init__(self, root: Path, keep_applied: int):
        self.root = root
        self.keep_applied = keep_applied
        self.downloads = root / "downloads"
        self.applied = root / "applied"
        self.rejected = root / "rejected"
        for d in (self.downloads, self.applied, self.rejected):
            statedir.make_dirs(d, root)
            statedir.tighten(d)

    def download_path(self, name: str) -> Path:
        return self.downloads / name

    def archive_applied(self, path: Path) -> None:
        with statedir.writing(self.applied, f"moving {path.name} into", self.root):
            shutil.move(path, self.applied / path.name)
            kept = sorted(self.applied.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in kept[self.keep_applied :]:
                old.unlink(missing_ok=True)

    def archive_rejected(self, path: Path, reason: str) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        target = self.rejected / f"{stamp}_{path.name}"
        with statedir.writing(self.rejected, f"moving {path.name} into", self.root):
            shutil.move(path, target)
        note = target.with_name(target.name + ".reason.txt")
        statedir.write_private(note, (reason + "\n").encode(), "writing", self.root)
        return target


class Runner:
    def __init__(
        self,
        cfg: Config,
        *,
        approve: Sequence[str] = (),
        engine: Engine | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        on_file: Callable[[FileOutcome], None] | None = None,
        lock: RunLock | None = None,
        progress: Progress | None = None,
        dry_run: bool = False,
    ):
        self.cfg = cfg
        self.dry_run = dry_run  # each file applied in a transaction rolled back; nothing recorded or moved
        self.progress = progress
        self.lock = lock  # checked again right before each commit
        self.source: Source | None = None  # open during run(); the daemon closes it to cut a hung run
        self.approve = {a.strip().lower() for a in approve}
        self.engine = engine or make_engine(cfg.database)
        self.should_stop = should_stop
        self.on_file = on_file
        self.blocks = Blocks.from_specs(block_specs(cfg.bitrix.blocks))
        self.linker = Linker()
        self.capacity: Capacity | None = None  # what the blocks' text columns hold, read at the run's start

    # -------------------------------------------------------------- database

    def _check_database(self) -> None:
        try:
            with self.engine.connect() as conn:
                problems = check_blocks(conn, self.cfg.bitrix)
                present = set(inspect(conn).get_table_names())
                problems += [f"syncd's table {t} is missing" for t in ledger.metadata.tables if t not in present]
                if not problems:
                    check_link_by(conn, self.cfg.bitrix.link_by)
        except OperationalError as exc:
            raise DatabaseError(f"cannot reach the database {safe_url(self.engine)}: {db_reason(exc)}") from None
        if problems:
            raise SchemaError("the database is not ready: " + "; ".join(problems) + " (run `syncd migrate`)")

    # -------------------------------------------------------------- one run

    def run(self) -> RunResult:
        result = RunResult(started=ledger.utcnow())
        relink_failed: DatabaseError | None = None
        try:
            self._check_database()
            # One load of the links per run: the relink and every file use the same ones.
            with self.engine.connect() as conn:
                self.linker = load_linker(conn, self.cfg.bitrix.link_by)
                self.capacity = read_capacity(conn, block_specs(self.cfg.bitrix.blocks))
            state = _State(self.cfg.state.dir, self.cfg.state.keep_applied)
            # Before the files: they are written with the current links, so a relink needed after a
            # link change only has to reach the rows already there (on a first load: none). If it
            # fails, the files are still applied and the run reports the failure; the next run retries.
            try:
                result.links = None if self.dry_run else self._refresh_links(state)
            except DatabaseError as exc:
                log.error("%s", exc)
                relink_failed = exc
            with ExitStack() as stack:
                source = stack.enter_context(open_source(self.cfg.source))
                self.source = source
                listing = source.list()
                for w in listing.waiting:
                    self._emit(result, FileOutcome(w.name, "waiting", w.reason))
                for bad in listing.refused:  # shown escaped: the name itself may forge lines
                    log.error("refused %r: %s", bad.name, bad.reason)
                    self._emit(result, FileOutcome(repr(bad.name), "rejected", bad.reason))
                fetched: list[_Fetched] = []
                for remote in listing.ready:
                    if self.should_stop():
                        break
                    item = self._peek(source, state, remote, result)
                    if item is False:
                        continue  # a duplicate or superseded one, known from its first bytes
                    if item is None:
                        item = self._fetch(source, state, remote, result)
                    if item is not None:
                        fetched.append(item)
                # Exports apply in the order 1C took them, whatever their names.
                fetched.sort(key=lambda f: (f.header.generated_at, f.remote.name))
                for item in fetched:
                    if self.should_stop():
                        item.path.unlink(missing_ok=True)
                        continue
                    self._handle(source, state, item, result)
            if relink_failed is not None:
                result.error = relink_failed
        except SyncdError as exc:
            # README: the first of 7, 6, 4, 5 wins; a failed relink (7) outranks a source failure after it.
            result.error = relink_failed if relink_failed is not None and isinstance(exc, SourceError) else exc
        except OperationalError as exc:
            result.error = DatabaseError(f"database {safe_url(self.engine)}: {db_reason(exc)}")
        finally:
            with suppress(OSError):  # a state.dir that failed the run may not even be readable
                for leftover in self.cfg.state.dir.joinpath("downloads").glob("*"):
                    leftover.unlink(missing_ok=True)
            result.finished = ledger.utcnow()
        return result

    def _refresh_links(self, state: _State) -> RefreshCounts | None:
        """Carry changed links (user deactivated, field edited, manual link added) to all three blocks.

        Runs before the run's files, which are linked as they are written; what can be stale are rows
        written under an older set of links. A relink reads every row, so it runs only when the links
        themselves changed since the last one (their fingerprint is kept in state.dir).
        """
        linker = self.linker
        fingerprint = linker.fingerprint()
        stamp = state.root / "links.fingerprint"
        try:
            if stamp.read_text(encoding="ascii").strip() == fingerprint:
                return None
        except OSError:
            pass
        try:
            counts = refresh_links(
                self.engine, self.cfg, linker=linker, before_commit=self.lock.verify if self.lock else None
            )
        except SQLAlchemyError as exc:
            raise DatabaseError(f"relinking the blocks to changed links failed, nothing was changed: "
                                f"{db_reason(exc)}") from None
        statedir.write_private(stamp, (fingerprint + "\n").encode("ascii"), "writing", state.root)
        if counts.changed:
            log.info("links: %s", counts.line())
        return counts

    def _dry(self, result: RunResult, path: Path | None, outcome: FileOutcome) -> bool:
        """In a dry run: the outcome shown, the download deleted, nothing recorded, the file left on the source."""
        if not self.dry_run:
            return False
        if path is not None:
            path.unlink(missing_ok=True)
        self._emit(result, outcome)
        return True

    def _emit(self, result: RunResult, outcome: FileOutcome) -> None:
        if self.progress:
            self.progress.clear()
        result.files.append(outcome)
        if self.on_file:
            self.on_file(outcome)

    def _fetch(self, source: Source, state: _State, remote: RemoteFile, result: RunResult) -> _Fetched | None:
        path = state.download_path(remote.name)
        t0 = time.monotonic()
        shown = self.progress
        try:
            sha = source.fetch(remote, path, (lambda d, t: shown.download(remote.name, d, t)) if shown else None)
        except SourceError:
            # A partial set of files must not be applied out of order: the whole run fails, applying nothing.
            path.unlink(missing_ok=True)
            raise
        try:
            header = self._read_header(path, remote.name)
        except ExportError as exc:
            self._reject(source, state, remote, path, sha, None, str(exc), result, t0)
            return None
        return _Fetched(remote, path, sha, header)

    def _reject(
        self,
        source: Source,
        state: _State,
        remote: RemoteFile,
        path: Path,
        sha: str,
        header: Header | None,
        reason: str,
        result: RunResult,
        t0: float,
    ) -> None:
        if self._dry(result, path, FileOutcome(remote.name, "rejected", reason, header,
                                               seconds=time.monotonic() - t0)):
            return
        stored = self.capacity.storable(reason) if self.capacity is not None else reason
        try:
            with self.engine.begin() as conn:
                ledger.record(conn, **self._entry(remote, sha, header, ledger.REJECTED), error=stored)
        except SQLAlchemyError as exc:  # the file stays where it is: the next run judges it again
            log.error("rejecting %s: %s", remote.name, reason)
            raise DatabaseError(f"recording {remote.name} as rejected failed: {db_reason(exc)}") from None
        kept = state.archive_rejected(path, reason)
        source.finish(remote, self.cfg.source.on_failure)
        log.error("rejected %s: %s (copy kept in %s)", remote.name, reason, kept)
        self._emit(result, FileOutcome(remote.name, "rejected", reason, header, seconds=time.monotonic() - t0))

    def _entry(self, remote: RemoteFile, sha: str, header: Header | None, status: str) -> dict[str, object]:
        return {
            "file_name": remote.name,
            "file_size": remote.size,
            "file_mtime": remote.mtime,
            "sha256": sha,
            "export_id": header.export_id if header else None,
            "generated_at": ledger.to_utc(header.generated_at) if header else None,
            "mode": header.mode if header else None,
            "status": status,
            "started_at": ledger.utcnow(),
            "finished_at": ledger.utcnow(),
        }

    def _handle(self, source: Source, state: _State, item: _Fetched, result: RunResult) -> None:
        t0 = time.monotonic()
        remote, header = item.remote, item.header
        approved = self._approved(header, remote)
        done = self._done_before(header, item.sha256 or None, approved=approved)
        if done is not None:
            self._skip(source, item, *done, result, t0)
            return
        if not approved:
            try:
                self._check_clock(header)
            except HeldByGuard as exc:  # before any download: the file stays on the source, for --approve
                self._hold(item, str(exc), result, t0)
                return
        bitrix = self.cfg.bitrix
        options = ApplyOptions(bitrix_tz=bitrix.timezone, on_missing=bitrix.on_missing,
                               max_missing_ratio=bitrix.max_missing_ratio, guard=not approved,
                               max_clock_skew=bitrix.max_clock_skew, override=approved)
        started = ledger.utcnow()
        shown = self.progress
        applied = 0
        download = _Download(source, remote, item.path) if item.streamed else None

        def tick(batch: int) -> None:
            nonlocal applied
            applied += batch
            if shown:
                shown.apply(remote.name, applied, (download.growing.size, remote.size) if download else None)

        try:
            counts = self._commit(item, download, options, tick, started)
        except ExportError as exc:
            self._reject(source, state, remote, item.path, item.sha256, header, str(exc), result, t0)
            return
        except HeldByGuard as exc:
            self._hold(item, str(exc), result, t0)
            return
        except (SQLAlchemyError, UnicodeEncodeError) as exc:
            # A value the database cannot store is the file's fault: it is rejected (rolled back already)
            # and the next file goes on. Anything else (a lost connection, a lock wait timeout) is not:
            # the file stays on the source and is retried next run.
            why = data_error_reason(exc)
            if why is not None:
                reason = str(ExportError(remote.name, why + "; nothing was changed"))
                self._reject(source, state, remote, item.path, item.sha256, header, reason, result, t0)
                return
            item.path.unlink(missing_ok=True)
            assert isinstance(exc, SQLAlchemyError)  # data_error_reason gives every UnicodeEncodeError a reason
            raise DatabaseError(f"applying {remote.name} failed, nothing was changed: {db_reason(exc)}") from None
        outcome = FileOutcome(remote.name, "applied", "", header, counts, time.monotonic() - t0)
        if self._dry(result, item.path, replace(outcome, message=dryrun.DRY_RUN_NOTE)):
            return
        state.archive_applied(item.path)
        source.finish(remote, self.cfg.source.on_success)
        log.info("applied %s: %s", remote.name, format_counts(counts))
        self._emit(result, outcome)

    def _commit(self, item: _Fetched, download: _Download | None, options: ApplyOptions,
                tick: Callable[[int], None], started: datetime) -> ApplyCounts:
        """Apply one export and record it in the ledger, in one transaction.

        With `download` (source.apply_while_downloading), the file is applied as it downloads: the
        parse and the writer work while the rest arrives, and the transaction commits only after the
        download has ended whole (a failed download raises its SourceError inside the transaction,
        which then rolls back).
        """
        remote, source_tz = item.remote, self.cfg.source.timezone
        try:
            with (bulk_gc(),
                  dryrun.transaction(self.engine, self.dry_run) as conn,
                  open_export(item.path, name=remote.name, source_tz=source_tz, bitrix_tz=options.bitrix_tz,
                              growing=download.reader if download else None, capacity=self.capacity,
                              limits=self.cfg.limits) as export):
                # In the writer's transaction, so the index and the writer see the same rows.
                index = digest_index(conn, self.blocks, export.header, self.linker, options, source_tz)
                with _records(export.changes(index)) as records:
                    counts = apply_export(conn, self.blocks, export.header, records, self.linker, options,
                                          progress=tick, name=remote.name)
                if download is not None:
                    item.sha256 = download.finish()
                self._record_applied(conn, item, counts, started, override=options.override)
        finally:
            if download is not None and not item.sha256:
                # Stopped early (rejected, held, a database error): the download still ends whole (it
                # never waited for the parse), so a rejected copy is complete and has its sha256.
                item.sha256 = download.finish()
        return counts

    def _record_applied(self, conn: Connection, item: _Fetched, counts: ApplyCounts, started: datetime, *,
                        override: bool = False) -> None:
        entry = self._entry(item.remote, item.sha256, item.header, ledger.APPLIED)
        entry["started_at"] = started
        entry.update(
            {f"{role}_{action}": getattr(c, action) for role, c in counts.by_role().items()
             for action in ledger.ACTIONS}
        )
        if self.lock is not None:
            self.lock.verify()  # another host may hold it now if our lock connection dropped
        import_id = ledger.record(conn, **entry)
        if override:
            ledger.override_newer(conn, ledger.to_utc(item.header.generated_at), import_id)

    def _read_header(self, path: Path, name: str) -> Header:
        """The export's header, checked as the whole file will be (zones, limits)."""
        return read_header(path, name=name, source_tz=self.cfg.source.timezone,
                           bitrix_tz=self.cfg.bitrix.timezone, limits=self.cfg.limits)

    def _hold(self, item: _Fetched, why: str, result: RunResult, t0: float) -> None:
        remote, header = item.remote, item.header
        reason = f"held: {why}; to apply it anyway: syncd run-once --approve {header.export_id}"
        if self._dry(result, item.path, FileOutcome(remote.name, "held", reason, header,
                                                    seconds=time.monotonic() - t0)):
            return
        with self.engine.begin() as conn:
            ledger.record(conn, **self._entry(remote, item.sha256, header, ledger.HELD), error=reason)
        item.path.unlink(missing_ok=True)
        log.warning("held %s: %s", remote.name, reason)
        self._emit(result, FileOutcome(remote.name, "held", reason, header, seconds=time.monotonic() - t0))

    def _approved(self, header: Header, remote: RemoteFile) -> bool:
        return bool({header.export_id.lower(), remote.name.lower()} & self.approve)

    def _check_clock(self, header: Header) -> None:
        """Hold an export dated ahead of this host's clock: applied, it would make every correct export
        after it look older (superseded, its counterparties skipped as newer)."""
        skew = self.cfg.bitrix.max_clock_skew
        now = ledger.utcnow()
        ahead = ledger.to_utc(header.generated_at) - now
        if ahead > skew:
            raise HeldByGuard(
                f"generatedAt {header.generated_at.isoformat()} is {span(ahead)} ahead of this host's clock "
                f"({now:%Y-%m-%d %H:%M:%S} UTC), more than bitrix.max_clock_skew {span(skew)}: a typo in 1C "
                "or 1C's clock running ahead; applied, it would make every correct export after it look older. "
                "Check the date (and this host's clock); if it is right")

    def _done_before(self, header: Header, sha: str | None, *, approved: bool = False) -> tuple[str, str] | None:
        """(duplicate | superseded, why) when the ledger says this export needs no applying; an approved
        export is never superseded (the admin says it is the truth)."""
        with self.engine.connect() as conn:
            prior = ledger.find_applied(conn, export_id=header.export_id, sha256=sha)
            # An as-of time later than now + max_clock_skew is not trusted to supersede anything.
            newest = ledger.newest_full(conn, until=ledger.utcnow() + self.cfg.bitrix.max_clock_skew)
        if prior is not None:
            return ledger.DUPLICATE, f"already applied as {prior.file_name} (import #{prior.id})"
        if (header.mode == "full" and not approved and newest is not None
                and ledger.to_utc(header.generated_at) < newest):
            return ledger.SUPERSEDED, f"a newer full export (as of {newest:%Y-%m-%d %H:%M:%S} UTC) was already applied"
        return None

    def _peek(self, source: Source, state: _State, remote: RemoteFile, result: RunResult
              ) -> _Fetched | Literal[False] | None:
        """A large file told from its first bytes: False when the ledger already has its export (a 1C
        job that delivers the same 300 MB twice costs a read of 64 KiB, not a download); with
        source.apply_while_downloading, the file to apply as it downloads. None: fetch it whole first
        (the default, a small file, or one whose first bytes do not tell: a zip, a late JSON header)."""
        if remote.size < PEEK_ABOVE:
            return None
        t0 = time.monotonic()
        head = state.download_path(remote.name + ".head")
        try:
            first = source.head(remote, PEEK_BYTES)
            if first.startswith(b"PK"):
                return None  # a zip's directory is at its end
            statedir.write_private(head, first, "writing", state.root)
            header = self._read_header(head, remote.name)
        except ExportError:
            return None  # maybe only cut off by the peek: the whole file decides
        finally:
            with suppress(OSError):
                head.unlink(missing_ok=True)
        done = self._done_before(header, None, approved=self._approved(header, remote))
        if done is None:
            if not self.cfg.source.apply_while_downloading:
                return None
            return _Fetched(remote, state.download_path(remote.name), "", header, streamed=True)
        # The bytes were not read, so no sha256: the ledger column holds "" for such entries.
        self._record_skip(source, remote, "", header, *done, result, t0, note=" (not downloaded)")
        return False

    def _skip(self, source: Source, item: _Fetched, status: str, why: str, result: RunResult, t0: float) -> None:
        item.path.unlink(missing_ok=True)
        self._record_skip(source, item.remote, item.sha256, item.header, status, why, result, t0)

    def _record_skip(self, source: Source, remote: RemoteFile, sha: str, header: Header, status: str, why: str,
                     result: RunResult, t0: float, *, note: str = "") -> None:
        """A duplicate or superseded file: into the ledger, off the source as on success, into the result."""
        if self._dry(result, None, FileOutcome(remote.name, status, why, header,  # type: ignore[arg-type]
                                               seconds=time.monotonic() - t0)):
            return
        with self.engine.begin() as conn:
            ledger.record(conn, **self._entry(remote, sha, header, status), error=why)
        source.finish(remote, self.cfg.source.on_success)
        log.info("%s %s: %s%s", status, remote.name, why, note)
        self._emit(result, FileOutcome(remote.name, status, why, header, seconds=time.monotonic() - t0))  # type: ignore[arg-type]


T = TypeVar("T")
PEEK_ABOVE = 1 << 20  # files from this size are first peeked at, to skip a repeat without downloading it
PEEK_BYTES = 1 << 16  # the header is in the first bytes (XML always; JSON as 1C writes it)
READ_AHEAD = True  # parse in a thread of its own while the writer waits for the database


def _records(counterparties: Iterator[T]) -> AbstractContextManager[Iterable[T]]:
    return ReadAhead(counterparties) if READ_AHEAD else nullcontext(counterparties)


def run_once(
    cfg: Config,
    *,
    approve: Sequence[str] = (),
    engine: Engine | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_file: Callable[[FileOutcome], None] | None = None,
    trigger: str = "once",
    on_start: Callable[[Runner], None] | None = None,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> RunResult:
    """Apply every pending complete export once. Never raises for expected failures: see RunResult.

    The whole run holds the run lock (syncd.lock): a run that finds it taken ends with
    error=LockedError (exit code 8). Every run is recorded in syncd_runs with its trigger
    (once | cron | daemon). `on_start` gets the Runner before it starts (the daemon uses it to
    cut a run that overstays its deadline). A `dry_run` writes nothing: each file is applied in a
    transaction rolled back, the ledger and the journal get nothing, every file stays on the source.
    """
    own_engine = engine is None
    engine = engine or make_engine(cfg.database)
    try:
        try:
            run_lock = RunLock(cfg).acquire()
        except SyncdError as exc:
            now = ledger.utcnow()
            result = RunResult(started=now, error=exc, finished=now)
        else:
            try:
                runner = Runner(
                    cfg, approve=approve, engine=engine, should_stop=should_stop, on_file=on_file, lock=run_lock,
                    progress=progress, dry_run=dry_run,
                )
                if on_start is not None:
                    on_start(runner)
                result = runner.run()
            finally:
                run_lock.release()
        if not dry_run:
            record_run(engine, result, trigger)
        return result
    finally:
        if own_engine:
            engine.dispose()
