"""The local-folder source on a real temp folder."""

from __future__ import annotations

import hashlib
import os
import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.config import FileAction, SourceConfig
from syncd.errors import SourceError
from syncd.sources import open_source
from syncd.sources.local import LocalSource
from tests.rig.sshd import set_age


def source(folder: Path, **kw: object) -> LocalSource:
    cfg = SourceConfig(type="local", timezone=ZoneInfo("Europe/Moscow"), path=folder, **kw)  # type: ignore[arg-type]
    src = open_source(cfg)
    assert isinstance(src, LocalSource)
    return src


def put(path: Path, data: bytes = b"x", age: float | None = 3600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if age is not None:
        set_age(path, age)
    return path


def test_listing_applies_the_rules(tmp_path: Path) -> None:
    put(tmp_path / "settlements_2.xml")
    put(tmp_path / "settlements_1.xml", b"12345")
    put(tmp_path / "settlements_3.xml.tmp")
    put(tmp_path / "settlements_4.xml.part")
    put(tmp_path / "settlements_5.xml", age=None)
    put(tmp_path / "other.xml")
    (tmp_path / "settlements_dir").mkdir()
    os.symlink(tmp_path / "settlements_1.xml", tmp_path / "settlements_link.xml")
    with source(tmp_path) as src:
        listing = src.list()
    assert [(f.name, f.size) for f in listing.ready] == [("settlements_1.xml", 5), ("settlements_2.xml", 1)]
    assert [w.name for w in listing.waiting] == ["settlements_5.xml"]
    assert "still being written" in listing.waiting[0].reason


def test_marker_required(tmp_path: Path) -> None:
    put(tmp_path / "settlements_1.xml")
    put(tmp_path / "settlements_1.xml.done", b"")
    put(tmp_path / "settlements_2.xml")
    with source(tmp_path, require_marker=True) as src:
        listing = src.list()
    assert [f.name for f in listing.ready] == ["settlements_1.xml"]
    assert listing.waiting[0].reason == "no settlements_2.xml.done marker yet"


def test_missing_folder_is_a_source_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=re.escape(str(tmp_path / "nope"))), source(tmp_path / "nope"):
        pass
    put(tmp_path / "file")
    with pytest.raises(SourceError, match="not a folder"), source(tmp_path / "file"):
        pass


def test_unreadable_folder_is_a_source_error(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    with source(folder) as src:
        folder.rmdir()  # vanished after the check, e.g. an unmounted share
        with pytest.raises(SourceError, match=re.escape(f"cannot list source folder {folder}")):
            src.list()


def test_fetch_copies_whole_file(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    put(tmp_path / "in" / "settlements_1.xml", data)
    out = tmp_path / "out"
    out.mkdir()
    with source(tmp_path / "in") as src:
        (f,) = src.list().ready
        sha = src.fetch(f, out / "x.xml")
    assert (out / "x.xml").read_bytes() == data
    assert sha == hashlib.sha256(data).hexdigest()
    assert os.listdir(out) == ["x.xml"]  # no temp file left beside it


def test_fetch_refuses_a_file_changed_since_listing(tmp_path: Path) -> None:
    put(tmp_path / "in" / "settlements_1.xml", b"first")
    with source(tmp_path / "in") as src:
        (f,) = src.list().ready
        put(tmp_path / "in" / "settlements_1.xml", b"first and more")
        with pytest.raises(SourceError, match="changed while copying"):
            src.fetch(f, tmp_path / "x.xml")
    assert os.listdir(tmp_path) == ["in"]  # neither dest nor a temp file


def test_finish_keep_delete(tmp_path: Path) -> None:
    put(tmp_path / "settlements_1.xml")
    put(tmp_path / "settlements_1.xml.done", b"")
    put(tmp_path / "settlements_2.xml")
    with source(tmp_path) as src:
        f1, f2 = src.list().ready
        src.finish(f2, FileAction("keep"))
        src.finish(f1, FileAction("delete"))
    assert os.listdir(tmp_path) == ["settlements_2.xml"]


def test_finish_move_creates_folder_numbers_clashes_and_moves_marker(tmp_path: Path) -> None:
    put(tmp_path / "processed" / "settlements_1.xml", b"earlier")
    put(tmp_path / "settlements_1.xml", b"new")
    put(tmp_path / "settlements_1.xml.done", b"")
    put(tmp_path / "settlements_2.xml", b"bad")
    with source(tmp_path, on_failure=FileAction("move", "failed/1c")) as src:
        f1, f2 = src.list().ready
        src.finish(f1, FileAction("move", "processed"))
        src.finish(f2, src.cfg.on_failure)
    assert (tmp_path / "processed" / "settlements_1.xml").read_bytes() == b"earlier"
    assert (tmp_path / "processed" / "settlements_1.1.xml").read_bytes() == b"new"
    assert (tmp_path / "processed" / "settlements_1.1.xml.done").exists()
    assert (tmp_path / "failed" / "1c" / "settlements_2.xml").read_bytes() == b"bad"
    assert sorted(os.listdir(tmp_path)) == ["failed", "processed"]


def test_finish_of_a_vanished_file_is_a_source_error(tmp_path: Path) -> None:
    put(tmp_path / "settlements_1.xml")
    with source(tmp_path) as src:
        (f,) = src.list().ready
        (tmp_path / "settlements_1.xml").unlink()
        with pytest.raises(SourceError, match=r"settlements_1\.xml"):
            src.finish(f, FileAction("delete"))


def test_describe(tmp_path: Path) -> None:
    assert source(tmp_path, min_age=timedelta(0)).describe() == str(tmp_path)
