"""A folder on this machine (or a share mounted here) as the export source."""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

from syncd.config import FileAction, SourceConfig
from syncd.errors import SourceError
from syncd.plumbing.statedir import download_file, writing
from syncd.sources.base import Entry, HashingWriter, classify_now, marker_name, numbered_name, plain_name
from syncd.sources.listing import Listing, RemoteFile

_MAX_SUFFIX = 1000


class LocalSource:
    def __init__(self, cfg: SourceConfig):
        if cfg.path is None:
            raise SourceError("source.path is required for a local source")
        self.cfg = cfg
        self.folder = cfg.path

    def __enter__(self) -> LocalSource:
        self._check_folder()
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def describe(self) -> str:
        return str(self.folder)

    def _check_folder(self) -> None:
        try:
            st = self.folder.stat()
        except OSError as exc:
            raise SourceError(f"source folder {self.folder}: {exc.strerror}; check source.path") from None
        if not stat.S_ISDIR(st.st_mode):
            raise SourceError(f"source folder {self.folder} is not a folder; check source.path")

    def list(self) -> Listing:
        entries: list[Entry] = []
        try:
            with os.scandir(self.folder) as it:
                for d in it:
                    try:
                        # lstat, like an SFTP server's directory listing: symlinks are not exports.
                        st = d.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # removed while listing
                    entries.append(Entry(d.name, st.st_size, st.st_mtime, stat.S_ISREG(st.st_mode)))
        except OSError as exc:
            raise SourceError(f"cannot list source folder {self.folder}: {exc.strerror}") from None
        return classify_now(entries, self.cfg)

    def fetch(self, file: RemoteFile, dest: Path, progress: Callable[[int, int], None] | None = None,
              written: Callable[[Path, int], None] | None = None) -> str:
        src = self.folder / plain_name(file.name)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            try:
                with src.open("rb") as fin, download_file(tmp) as fout:
                    done = 0
                    hashed = HashingWriter(fout, None if written is None else lambda size: written(tmp, size),
                                           path=tmp)
                    while chunk := fin.read(1 << 20):
                        hashed.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, file.size)
                    with writing(tmp, "writing"):
                        fout.flush()
                        os.fsync(fout.fileno())
                    after = os.fstat(fin.fileno())
            except OSError as exc:
                where = tmp if exc.filename == str(tmp) else src
                raise SourceError(f"cannot copy {src} to {dest}: {where}: {exc.strerror}") from None
            copied = tmp.stat().st_size
            if after.st_size != file.size or after.st_mtime != file.mtime or copied != file.size:
                raise SourceError(
                    f"{src} changed while copying (listed {file.size} bytes, now {after.st_size}, "
                    f"copied {copied}); will retry next run"
                )
            with writing(dest, "renaming the download to"):
                os.replace(tmp, dest)
            return hashed.hexdigest()
        finally:
            with contextlib.suppress(OSError):  # a folder we cannot even look into holds no part file
                tmp.unlink(missing_ok=True)

    def head(self, file: RemoteFile, size: int) -> bytes:
        src = self.folder / plain_name(file.name)
        try:
            with src.open("rb") as fin:
                return fin.read(size)
        except OSError as exc:
            raise SourceError(f"cannot read {src}: {exc.strerror}") from None

    def finish(self, file: RemoteFile, action: FileAction) -> None:
        src = self.folder / plain_name(file.name)
        marker = self.folder / marker_name(file.name)
        try:
            if action.kind == "keep":
                return
            if action.kind == "delete":
                src.unlink()
                marker.unlink(missing_ok=True)
                return
            target_dir = self.folder / action.dir
            target_dir.mkdir(parents=True, exist_ok=True)
            target = self._free_name(target_dir, file.name)
            src.rename(target)
            if marker.exists():
                # Under the file's new name, so a numbered file and its marker still pair up.
                marker.rename(target_dir / marker_name(target.name))
        except OSError as exc:
            raise SourceError(f"cannot {action} {src}: {exc.filename}: {exc.strerror}") from None

    @staticmethod
    def _free_name(folder: Path, name: str) -> Path:
        for n in range(_MAX_SUFFIX):
            candidate = folder / numbered_name(name, n)
            if not candidate.exists() and not (folder / marker_name(candidate.name)).exists():
                return candidate
        raise SourceError(f"{folder} already holds {_MAX_SUFFIX} files named like {name}; clean it up")
