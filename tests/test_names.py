"""A name in a source listing is a name, never a path (issue 13).

A hostile or broken SFTP server (or anyone who can write the local source folder) chooses the names
syncd sees. A name with `/`, `\\`, `..`, NUL or a control character must be refused before anything is
read or moved: with `pattern = "*"` a name like `../../home/syncd/.profile` would otherwise be a path
syncd downloads onto, and a newline in a name forges log and output lines. Such a file is reported as
rejected (exit 4) with its name escaped, and left exactly where it is.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.config import FileAction, SourceConfig
from syncd.errors import SourceError
from syncd.sources import RemoteFile, open_source
from syncd.sources.base import Entry, classify, unsafe_name
from tests.exports import counterparty, xml_export
from tests.fs_helpers import local_source
from tests.ops_helpers import imports, prepare_database, syncd, write_config
from tests.rig.sshd import SshServer

OLD = time.time() - 3600

# Names a real file system can hold, each with what the message must say about it.
HOSTILE = {
    "settlements_2.xml\napplied    settlements_forged.xml": "a newline",
    "settlements_a\\b.xml": "a backslash",
    "settlements_\x1b[31mred.xml": "the control character '\\x1b'",
    "settlements_\x7f.xml": "the control character '\\x7f'",
    "settlements_\r.xml": "a carriage return",
    os.fsdecode(b"settlements_\xff.xml"): "bytes that are not UTF-8",
}


# ---------------------------------------------------------------- the check (pure)


@pytest.mark.parametrize(("name", "why"), [
    *HOSTILE.items(),
    ("../../home/syncd/.profile", "a '/'"),
    ("settlements_/../../etc/cron.d/x", "a '/'"),
    ("settlements_\x00.xml", "a NUL"),
    ("..", "is '..'"),
    (".", "is '.'"),
    ("", "is empty"),
    ("settlements_\u2028.xml", "the line separator '\\u2028'"),
    ("settlements_\x85.xml", "the control character '\\x85'"),
])
def test_unsafe_names_say_what_is_wrong(name: str, why: str) -> None:
    reason = unsafe_name(name)
    assert reason is not None and why in reason


@pytest.mark.parametrize("name", ["settlements_20261125_100000.xml", "settlements..xml", "выгрузка 1.json.gz",
                                  "settlements_(1) [copy].zip"])
def test_ordinary_names_are_fine(name: str) -> None:
    assert unsafe_name(name) is None


def test_classify_refuses_a_slash_and_a_nul_that_only_a_hostile_server_can_list() -> None:
    """No file system holds `/` or NUL in a name; a hostile SFTP server can still send them."""
    entries = [Entry("../../home/syncd/.profile", 1, OLD), Entry("x/../../etc/passwd", 1, OLD),
               Entry("settlements_\x00.xml", 1, OLD), Entry("settlements_1.xml", 1, OLD),
               Entry("settlements_new\n.xml", 1, time.time())]  # refused even while it is young
    listing = classify(entries, pattern="*", min_age=timedelta(seconds=60), require_marker=False,
                       now=time.time())
    assert [f.name for f in listing.ready] == ["settlements_1.xml"]
    assert listing.waiting == []
    # A name starting with a dot is never an export (hidden, or being copied): ignored as before.
    assert sorted(r.name for r in listing.refused) == ["settlements_\x00.xml", "settlements_new\n.xml",
                                                       "x/../../etc/passwd"]


def local_config(folder: Path, **kw: object) -> SourceConfig:
    values: dict[str, object] = dict(type="local", timezone=ZoneInfo("Europe/Moscow"), path=folder,
                                     pattern="*", min_age=timedelta(seconds=1))
    values.update(kw)
    return SourceConfig(**values)  # type: ignore[arg-type]


def sftp_config(server: SshServer, folder: Path) -> SourceConfig:
    return SourceConfig(type="sftp", timezone=ZoneInfo("Europe/Moscow"), host=server.host, port=server.port,
                        username=server.username, private_key=server.client_key, known_hosts=server.known_hosts,
                        remote_dir=str(folder), pattern="*", min_age=timedelta(seconds=1))


# ---------------------------------------------------------------- the sources themselves


def put_hostile(folder: Path, sshd: SshServer | None = None) -> None:
    for name in HOSTILE:
        if sshd is not None:
            sshd.put(folder / name, b"<x/>")
        else:
            (folder / name).write_bytes(b"<x/>")
            os.utime(folder / name, (OLD, OLD))


@pytest.mark.parametrize("kind", ["local", "sftp"])
def test_a_listing_refuses_hostile_names(kind: str, sshd: SshServer, remote_dir: Path, tmp_path: Path) -> None:
    folder = remote_dir if kind == "sftp" else tmp_path
    put_hostile(folder, sshd if kind == "sftp" else None)
    cfg = sftp_config(sshd, remote_dir) if kind == "sftp" else local_config(tmp_path)
    with open_source(cfg) as src:
        listing = src.list()  # before the fix, SFTP: UnicodeDecodeError on the non-UTF-8 name
    assert listing.ready == [] and listing.waiting == []
    assert {r.name: r.reason for r in listing.refused}.keys() == HOSTILE.keys()
    for r in listing.refused:
        assert HOSTILE[r.name] in r.reason, r.reason


@pytest.mark.parametrize("kind", ["local", "sftp"])
@pytest.mark.parametrize("name", ["../victim.xml", "sub/../../victim.xml", "..", "victim\n.xml"])
def test_a_source_never_reads_or_moves_a_path_it_is_handed(
    kind: str, name: str, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    """Defence in depth: a RemoteFile that did not come from a listing is refused by fetch, head and finish."""
    folder = (remote_dir if kind == "sftp" else tmp_path / "exports")
    folder.mkdir(exist_ok=True)
    (folder / "sub").mkdir()
    victim = folder.parent / "victim.xml"
    victim.write_bytes(b"precious")
    cfg = sftp_config(sshd, folder) if kind == "sftp" else local_config(folder)
    state = tmp_path / "downloads"
    state.mkdir()
    file = RemoteFile(name, 8, OLD)
    with open_source(cfg) as src:
        for call in (lambda: src.fetch(file, state / "x.xml"), lambda: src.head(file, 10),
                     lambda: src.finish(file, FileAction("delete")),
                     lambda: src.finish(file, FileAction("move", "processed"))):
            with pytest.raises(SourceError, match="not a plain file name"):
                call()
    assert victim.read_bytes() == b"precious"
    assert list(state.iterdir()) == []
    assert not (folder / "processed").exists()


# ---------------------------------------------------------------- what a user sees: run-once end to end


@pytest.mark.parametrize("kind", ["sftp", "local"])
def test_run_once_reports_hostile_names_leaves_them_alone_and_goes_on(
    kind: str, db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    prepare_database(db_url)
    state = tmp_path / "state"
    if kind == "sftp":
        folder = remote_dir
        config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, state, source={"pattern": "*"})
        sshd.put(folder / "settlements_1.xml", xml_export([counterparty(1)]))
    else:
        folder = tmp_path / "exports"
        folder.mkdir()
        config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, state,
                              source=local_source(folder, pattern="*"))
        (folder / "settlements_1.xml").write_bytes(xml_export([counterparty(1)]))
        os.utime(folder / "settlements_1.xml", (OLD, OLD))
    put_hostile(folder, sshd if kind == "sftp" else None)
    before = {n: (folder / n).stat().st_ino for n in HOSTILE}

    out = syncd("run-once", "--config", config)

    assert out.returncode == 4, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("applied    settlements_1.xml") for line in lines), out.stdout
    assert not any(line.startswith("applied    settlements_forged") for line in lines), out.stdout
    for name, why in HOSTILE.items():
        line = next(ln for ln in lines if ln.startswith(f"rejected   {name!r}"))
        assert why in line and "left where it is" in line, line
    assert "summary: 1 applied, 0 duplicate, 0 superseded, 0 held, 6 rejected" in out.stdout
    # Left exactly where they were: not moved to failed/, not copied to state.dir/rejected.
    assert {n: (folder / n).stat().st_ino for n in HOSTILE} == before
    assert not (folder / "failed").exists()
    assert list((state / "rejected").iterdir()) == []
    assert [(r["file_name"], r["status"]) for r in imports(db_url)] == [("settlements_1.xml", "applied")]
