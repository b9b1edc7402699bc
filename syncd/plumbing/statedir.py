"""state.dir on this host: private modes, and a clear error when the disk will not take a write.

What syncd keeps there holds every buyer's debts (downloads, rejected copies and their reasons) or
says what it does (the lock, the links fingerprint). Files are created 0600 and folders 0700 whatever
the umask: cron and a root shell often run with 022, some set-ups with 000.

A write that fails because the disk is full, read-only, or belongs to another user (a first run as
root, then the service as `syncd`) is a StateError, exit 3: the fix is on this host, not in the data
or the network, and the message names the folder, what is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from syncd.errors import StateError

FILE_MODE = 0o600
DIR_MODE = 0o700
PARENT_MODE = 0o755


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"


def _owner(path: Path) -> str:
    """Who owns `path`, or the nearest folder above it that this user can see."""
    for p in (path, *path.parents):
        try:
            st = p.stat()
        except OSError:
            continue
        return f"{p} belongs to {user_name(st.st_uid)}:{_group_name(st.st_gid)} (mode {stat.S_IMODE(st.st_mode):04o})"
    return f"{path} cannot be looked at"


def state_error(exc: OSError, path: Path, doing: str, root: Path | None = None) -> StateError:
    """The StateError for an OSError met while `doing` something to `path` in state.dir `root`
    (by default the folder of `path`)."""
    # A source writes a download knowing only its folder (state.dir/downloads), not state.dir.
    subject = f"state.dir {root}" if root is not None else f"state.dir's folder {path.parent}"
    root = root or path.parent
    what = f"{doing} {path}: {exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StateError(
            f"{subject} is full ({what}); the run stopped there and what it did not apply stays on the source. "
            f"Free space there (df {root}; old copies in state.dir/rejected can go) or point state.dir at a "
            "larger disk; the next run picks up where this one stopped"
        )
    if exc.errno == errno.EROFS:
        return StateError(
            f"{subject} is on a read-only file system ({what}); remount it read-write or point state.dir at a "
            "writable folder"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        me = user_name(os.geteuid())
        return StateError(
            f"{subject}: syncd runs as user {me}, which may not write there ({what}; {_owner(path)}). "
            f"A run as root or as another user made it; give it to {me}: chown -R {me}: {root}"
        )
    return StateError(f"{subject}: {what}")


@contextlib.contextmanager
def writing(path: Path, doing: str, root: Path | None = None) -> Iterator[None]:
    """Any OSError inside becomes the StateError for `path`."""
    try:
        yield
    except OSError as exc:
        raise state_error(exc, path, doing, root) from None


def make_dirs(path: Path, root: Path | None = None) -> None:
    """`path` 0700 and any missing folder above it 0755, whatever the umask (mkdir's own `mode` is
    masked by it). The folders above hold nothing private, and must let the service's user through
    to a state.dir handed to it with chown after a first run as root; they are never writable by
    others, who could otherwise swap state.dir for a folder of their own.

    A folder that exists is left as it is: its mode is the admin's (systemd's StateDirectoryMode).
    """
    missing = []
    for p in (path, *path.parents):
        if p.is_dir():
            break
        missing.append(p)
    with writing(path, "creating the folder", root):
        for p in reversed(missing):
            mode = DIR_MODE if p == path else PARENT_MODE
            try:
                p.mkdir(mode=mode & DIR_MODE)  # never more open than 0700 until the chmod below
            except FileExistsError:
                if not p.is_dir():
                    raise
                continue  # another run made it meanwhile
            os.chmod(p, mode)


def tighten(folder: Path) -> None:
    """A folder of syncd's own (downloads, applied, rejected) that an older syncd made with the umask's
    mode becomes 0700; one it cannot change is left as it is (the writes say so if it matters)."""
    with contextlib.suppress(OSError):
        if stat.S_IMODE(folder.stat().st_mode) != DIR_MODE:
            os.chmod(folder, DIR_MODE)


def open_private(path: Path, *, replace: bool = False) -> BinaryIO:
    """A new file for writing, 0600 whatever the umask. `replace`: truncate an existing one (and take
    its mode back to 0600); otherwise the name must be free. Raises OSError: callers say where."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(path, flags, FILE_MODE)
    try:
        if replace:
            os.fchmod(fd, FILE_MODE)  # a file an older syncd made with the umask's mode
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def download_file(path: Path) -> Iterator[BinaryIO]:
    """A new download's part file (0600: it holds every buyer's debts). Opening and closing it fail
    as StateError; the writes inside are the caller's (HashingWriter(path=...) turns theirs too)."""
    with writing(path, "creating"):
        out = open_private(path)
    try:
        yield out
    finally:
        with writing(path, "writing"):
            out.close()


def write_private(path: Path, data: bytes, doing: str, root: Path | None = None) -> None:
    """Write `data` to `path` (0600), replacing what was there; a failure is a StateError."""
    with writing(path, doing, root), open_private(path, replace=True) as out:
        out.write(data)
