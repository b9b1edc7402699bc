"""Which files in a source folder are complete exports: shared by the SFTP and the local source.

1C's writers are not atomic, so a file is taken only when its name is not a temporary one, it
has not been modified for `min_age`, and (if the site asks for it) its `<name>.done` marker is
there. The rules are pure functions of a directory listing and a clock, so they are tested
without a server.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import BinaryIO

from syncd.config import SourceConfig
from syncd.errors import SourceError
from syncd.plumbing.statedir import state_error
from syncd.sources.listing import Listing, Refused, RemoteFile, Waiting

MARKER_SUFFIX = ".done"
TEMP_SUFFIXES = (".tmp", ".part")


@dataclass(frozen=True)
class Entry:
    """One name in a directory as a source sees it."""

    name: str
    size: int
    mtime: float
    is_file: bool = True  # False for directories, symlinks, devices…


def is_candidate_name(name: str) -> bool:
    """False for names that are never an export, whatever the pattern says."""
    if name.startswith("."):
        # rsync, scp and many upload tools write `.name.XXXX` while copying.
        return False
    return not name.endswith((*TEMP_SUFFIXES, MARKER_SUFFIX))


_NAMED = {"/": "a '/'", "\\": "a backslash", "\0": "a NUL", "\n": "a newline", "\r": "a carriage return",
          "\t": "a tab"}


def unsafe_name(name: str) -> str | None:
    """What makes `name` from a listing more than a plain file name, or None when it is one.

    Whoever controls the server (or can write the folder) chooses the names: one with a separator or
    `..` would point a download or a move elsewhere, one with a control character or a line break
    forges lines of syncd's output and log. `\\` counts as a separator because Windows SFTP servers
    take it as one. Names that are not UTF-8 arrive with surrogate escapes and cannot be printed.
    """
    if name in ("", ".", ".."):
        return f"is {name!r}" if name else "is empty"
    for ch in name:
        if ch in _NAMED:
            return f"holds {_NAMED[ch]}"
        category = unicodedata.category(ch)
        if category == "Cs":
            return "holds bytes that are not UTF-8"
        if category == "Cc":
            return f"holds the control character {ch!r}"
        if category in ("Zl", "Zp"):
            return f"holds the line separator {ch!r}"
    return None


def plain_name(name: str) -> str:
    """`name` when it is a plain file name; else SourceError. Every source checks a name before it
    builds a path from it, even one from its own listing (which already left such names out)."""
    why = unsafe_name(name)
    if why is not None:
        raise SourceError(f"{name!r} is not a plain file name (it {why}); syncd does not read or move it")
    return name


def refused_reason(why: str) -> str:
    return (f"the file name {why}: refused and left where it is (not read, not moved: a move is what such a "
            "name may be made for); rename or remove it on the source")


def marker_name(name: str) -> str:
    return name + MARKER_SUFFIX


def format_seconds(seconds: float) -> str:
    """`45s`, `5m`, `2h`, `90s`: short, and the same syntax the config accepts."""
    s = round(seconds)
    if s >= 3600 and s % 3600 == 0:
        return f"{s // 3600}h"
    if s >= 60 and s % 60 == 0:
        return f"{s // 60}m"
    return f"{s}s"


def classify_now(entries: Iterable[Entry], cfg: SourceConfig) -> Listing:
    """`classify` with the source's own rules, as of this moment."""
    return classify(entries, pattern=cfg.pattern, min_age=cfg.min_age, require_marker=cfg.require_marker,
                    now=time.time())


def classify(
    entries: Iterable[Entry],
    *,
    pattern: str,
    min_age: timedelta,
    require_marker: bool,
    now: float,
) -> Listing:
    """Split the matching names into ready files, ones to wait for and refused ones (not plain file
    names, see unsafe_name), each sorted by name.

    `now` is on the same clock as the entries' mtimes (the server's, as far as it can be told).
    """
    entries = list(entries)
    files = {e.name for e in entries if e.is_file}
    ready: list[RemoteFile] = []
    waiting: list[Waiting] = []
    refused: list[Refused] = []
    limit = min_age.total_seconds()
    for e in entries:
        # Case-sensitive everywhere: the same config must pick the same files on any OS.
        if not e.is_file or not is_candidate_name(e.name) or not fnmatchcase(e.name, pattern):
            continue
        why = unsafe_name(e.name)
        if why is not None:
            refused.append(Refused(e.name, refused_reason(why)))
            continue
        age = now - e.mtime
        if age < limit:
            if age < 0:
                why = f"modified {format_seconds(-age)} in the future (is the server's clock ahead?)"
            else:
                why = f"still being written: modified {format_seconds(age)} ago"
            waiting.append(Waiting(e.name, f"{why}, waiting for min_age={format_seconds(limit)}"))
        elif require_marker and marker_name(e.name) not in files:
            waiting.append(Waiting(e.name, f"no {marker_name(e.name)} marker yet"))
        else:
            ready.append(RemoteFile(e.name, e.size, e.mtime))
    ready.sort(key=lambda f: f.name)
    waiting.sort(key=lambda w: w.name)
    refused.sort(key=lambda r: r.name)
    return Listing(ready=ready, waiting=waiting, refused=refused)


def numbered_name(name: str, n: int) -> str:
    """`a.xml.gz` → `a.1.xml.gz`: a free name in a move target, keeping the extensions readable."""
    if n == 0:
        return name
    stem, dot, ext = name.partition(".")
    if not stem:  # a name starting with a dot has no stem to number
        return f"{name}.{n}"
    return f"{stem}.{n}{dot}{ext}"


def join(folder: str, *names: str) -> str:
    """Join remote (POSIX) path parts; `.` folders stay relative to the login directory."""
    return posixpath.normpath(posixpath.join(folder, *names))


class HashingWriter:
    """Writes to `out` and keeps the sha256 of what went through, so a download is not read again to hash it."""

    def __init__(self, out: BinaryIO, written: Callable[[int], None] | None = None, *, path: Path) -> None:
        """`written(size)`: after each write, once the first `size` bytes have reached the file.
        `path`: the file `out` writes, named when this host's disk refuses a write (StateError)."""
        self._out = out
        self._sha = hashlib.sha256()
        self._written = written
        self._size = 0
        self._path = path

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        try:
            n = self._out.write(data)
            if self._written is not None:
                self._out.flush()  # a reader of the growing file sees every byte counted
        except OSError as exc:  # a full state.dir, not a failing source: exit 3
            raise state_error(exc, self._path, "writing") from None
        self._size += n
        if self._written is not None:
            self._written(self._size)
        return n

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
