"""source.apply_while_downloading = true: large exports applied as they download (runner + syncd.plumbing.pipe),
over the real sshd and MariaDB.

What a user relies on: the result is the same as a download-then-apply (rows, ledger sha256, the
archived copy); a download that breaks half-way changes nothing; a bad file is still rejected whole,
its copy kept complete; without the setting, files are downloaded first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from syncd import config as config_mod
from syncd.config import Config
from syncd.errors import SourceError
from syncd.run import FileOutcome, RunResult, run_once
from syncd.run.runner import PEEK_ABOVE
from tests.exports import counterparty, json_export, xml_export
from tests.ops_helpers import imports, prepare_database, sql, write_config
from tests.rig.sshd import SshServer

EXPORTS = {"xml": xml_export, "json": json_export}


class Shown:
    """A Progress that keeps what the terminal line would have said."""

    def __init__(self) -> None:
        self.applying: list[tuple[str, int, tuple[int, int] | None]] = []
        self.downloading: list[str] = []

    def download(self, name: str, done: int, total: int) -> None:
        self.downloading.append(name)

    def apply(self, name: str, counterparties: int, downloaded: tuple[int, int] | None = None) -> None:
        self.applying.append((name, counterparties, downloaded))

    def clear(self) -> None:
        pass


@pytest.fixture
def cfg(db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path) -> Config:
    prepare_database(db_url)
    return config_mod.load(write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state",
                                        source={"apply_while_downloading": True}))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = create_engine(db_url)
    yield e
    e.dispose()


def run(cfg: Config, engine: Engine, **kw: object) -> RunResult:
    return run_once(cfg, engine=engine, **kw)  # type: ignore[arg-type]


def large(fmt: str = "xml", *, first: int = 1, generated_at: str = "2026-11-25T10:00:00", **kw: object) -> bytes:
    # paymentsFrom given: with every header key before the counterparties, a JSON header is read from
    # its first bytes too (without it, the header could still come after the array).
    content = EXPORTS[fmt]([counterparty(n, payments=10, documents=2, **kw) for n in range(first, first + 600)],
                           generated_at=generated_at, payments_from="2026-08-01")
    assert len(content) > PEEK_ABOVE
    return content


def column(db_url: str, statement: str) -> list[object]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(statement)).scalars())
    finally:
        engine.dispose()


def balance_ids(db_url: str) -> set[object]:
    return set(column(db_url, "SELECT UF_CONTRACTOR_XML_ID FROM contractor_balance"))


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_a_large_export_is_applied_as_it_downloads(
    fmt: str, cfg: Config, engine: Engine, db_url: str, sshd: SshServer, remote_dir: Path
) -> None:
    content = large(fmt)
    name = f"settlements_1.{fmt}"
    sshd.put(remote_dir / name, content)
    shown = Shown()

    result = run(cfg, engine, progress=shown)

    assert (result.exit_code, [(f.name, f.status) for f in result.files]) == (0, [(name, "applied")])
    # Applied while it downloaded: the apply line carried the download's bytes, no download line came first.
    assert shown.downloading == [] and shown.applying and all(d is not None for _, _, d in shown.applying)
    assert shown.applying[-1][2] is not None and shown.applying[-1][2][1] == len(content)
    assert len(balance_ids(db_url)) == 600
    assert sql(db_url, "SELECT COUNT(*) FROM contractor_payments") == 6000
    [entry] = imports(db_url)
    assert (entry["status"], entry["sha256"]) == ("applied", hashlib.sha256(content).hexdigest())
    assert (cfg.state.dir / "applied" / name).read_bytes() == content
    assert list((cfg.state.dir / "downloads").iterdir()) == []


def test_a_download_that_breaks_while_applying_changes_nothing(
    cfg: Config, engine: Engine, db_url: str, sshd: SshServer, remote_dir: Path
) -> None:
    small = xml_export([counterparty(n) for n in range(1, 601)], generated_at="2026-11-25T09:00:00")
    assert len(small) < PEEK_ABOVE
    sshd.put(remote_dir / "settlements_1.xml", small)
    content = large(generated_at="2026-11-25T10:00:00", debt="2000.00")
    sshd.put(remote_dir / "settlements_2.xml", content)

    def cut_the_next_one(outcome: FileOutcome) -> None:
        # Once the small file is applied, the large one is cut on the server before its download starts:
        # the parser has read half of it when the download finds it short.
        if outcome.name == "settlements_1.xml":
            sshd.put(remote_dir / "settlements_2.xml", content[: len(content) // 2])

    on_file: Callable[[FileOutcome], None] = cut_the_next_one
    result = run(cfg, engine, on_file=on_file)

    assert isinstance(result.error, SourceError), result.error
    assert "settlements_2.xml changed while downloading" in str(result.error)
    assert [(f.name, f.status) for f in result.files] == [("settlements_1.xml", "applied")]
    assert [(e["file_name"], e["status"]) for e in imports(db_url)] == [("settlements_1.xml", "applied")]
    debts = set(column(db_url, "SELECT UF_DEBT FROM contractor_balance"))
    assert len(balance_ids(db_url)) == 600 and debts == {1000}  # not one row of the second file
    assert sql(db_url, "SELECT COUNT(*) FROM contractor_payments") == 0
    assert (remote_dir / "settlements_2.xml").exists()  # left for the next run
    assert list((cfg.state.dir / "downloads").iterdir()) == []

    sshd.put(remote_dir / "settlements_2.xml", content)  # delivered again, whole
    again = run(cfg, engine)
    assert (again.exit_code, [(f.name, f.status) for f in again.files]) == (0, [("settlements_2.xml", "applied")])
    assert set(column(db_url, "SELECT UF_DEBT FROM contractor_balance")) == {2000}


def test_a_bad_large_export_is_rejected_and_kept_whole(
    cfg: Config, engine: Engine, db_url: str, sshd: SshServer, remote_dir: Path
) -> None:
    # The bad value is near the start: the reader stops there while most of the file is still to come.
    cps = [counterparty(n, payments=10, documents=2) for n in range(1, 601)]
    cps[2]["debt"] = "много"
    content = xml_export(cps)
    assert len(content) > PEEK_ABOVE
    sshd.put(remote_dir / "settlements_1.xml", content)

    result = run(cfg, engine)

    assert result.exit_code == 4
    [outcome] = result.files
    assert outcome.status == "rejected" and "много" in outcome.message
    [kept] = [p for p in (cfg.state.dir / "rejected").iterdir() if not p.name.endswith(".reason.txt")]
    assert kept.read_bytes() == content  # downloaded to the end all the same
    [entry] = imports(db_url)
    assert (entry["status"], entry["sha256"]) == ("rejected", hashlib.sha256(content).hexdigest())
    assert balance_ids(db_url) == set()


def test_by_default_a_large_export_is_downloaded_first(
    db_url: str, engine: Engine, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    prepare_database(db_url)
    off = config_mod.load(write_config(tmp_path / "off.toml", sshd, remote_dir, db_url, tmp_path / "state"))
    assert off.source.apply_while_downloading is False
    content = large()
    sshd.put(remote_dir / "settlements_1.xml", content)
    shown = Shown()

    result = run(off, engine, progress=shown)

    assert (result.exit_code, [(f.name, f.status) for f in result.files]) == (0, [("settlements_1.xml", "applied")])
    assert shown.downloading and set(shown.downloading) == {"settlements_1.xml"}
    assert shown.applying and all(d is None for _, _, d in shown.applying)
    assert len(balance_ids(db_url)) == 600
    [entry] = imports(db_url)
    assert entry["sha256"] == hashlib.sha256(content).hexdigest()
