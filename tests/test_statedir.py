"""state.dir never wedges or leaks syncd (issues 13, 15, 17).

- What syncd writes there holds every buyer's debts (downloads, rejected copies and their reasons) or
  says what it does: files 0600, folders 0700, whatever the umask of cron or a root shell.
- A full, read-only or foreign (made by a root run) state dir is exit 3 naming the folder and what is
  wrong; the lock is released on every error path, so the daemon's next run works once the disk does.

Real file systems throughout: a small tmpfs filled to the last byte, a read-only remount, and a
process running as `nobody`.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.errors import StateError
from syncd.plumbing.lock import FileLock
from tests.exports import counterparty, xml_export
from tests.fs_helpers import fill, local_source, tmpfs
from tests.ops_helpers import env, imports, prepare_database, runs, wait_for, write_config
from tests.rig.sshd import SshServer
from tests.test_daemon import FAST, applied_names, daemon

GOOD = xml_export([counterparty(1), counterparty(2)], generated_at="2026-11-25T10:00:00")
BAD = b"<SettlementsExport><oops/></SettlementsExport>"


@pytest.fixture
def mnt(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "mnt", size="2m") as where:
        yield where


def run_once(config: Path, *args: str, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", "run-once", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, env=env(), umask=-1 if umask is None else umask)


# ---------------------------------------------------------------- modes


def modes(root: Path) -> dict[str, str]:
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


@pytest.mark.parametrize("kind", ["sftp", "local"])
@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_state_files_are_0600_and_folders_0700_whatever_the_umask(
    kind: str, umask: int, db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    prepare_database(db_url)
    state = tmp_path / "var" / "syncd" / "shop1"  # parents that do not exist yet are made too
    metrics = tmp_path / "textfile" / "syncd.prom"
    metrics.parent.mkdir()
    if kind == "sftp":
        config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, state)
        sshd.put(remote_dir / "settlements_1.xml", GOOD)
        sshd.put(remote_dir / "settlements_2.xml", BAD)
    else:
        folder = tmp_path / "exports"
        folder.mkdir()
        config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, state, source=local_source(folder))
        for name, data in (("settlements_1.xml", GOOD), ("settlements_2.xml", BAD)):
            (folder / name).write_bytes(data)
            os.utime(folder / name, (0, 0))

    out = run_once(config, "--metrics-file", str(metrics), umask=umask)

    assert out.returncode == 4, out.stdout + out.stderr
    found = modes(state)
    rejected = [p for p in found if p.startswith("rejected/") and not p.endswith(".reason.txt")]
    assert len(rejected) == 1 and f"{rejected[0]}.reason.txt" in found  # a copy and its reason were written
    assert "applied/settlements_1.xml" in found and "syncd.lock" in found and "links.fingerprint" in found
    assert {p: m for p, m in found.items() if (state / p).is_dir()} == dict.fromkeys(
        [".", "downloads", "applied", "rejected"], "0o700")
    assert {p: m for p, m in found.items() if not (state / p).is_dir()} == dict.fromkeys(
        [p for p in found if not (state / p).is_dir()], "0o600")
    # Folders above it hold nothing private; the service's user must get through them (never written by others).
    assert oct(stat.S_IMODE((state.parent).stat().st_mode)) == "0o755"
    # node_exporter runs as a user of its own and must read it; nobody else may write it.
    assert oct(stat.S_IMODE(metrics.stat().st_mode)) == "0o644"


# ---------------------------------------------------------------- a full disk


def local_config(tmp_path: Path, db_url: str, sshd: SshServer, state: Path) -> tuple[Path, Path]:
    folder = tmp_path / "exports"
    folder.mkdir(exist_ok=True)
    config = write_config(tmp_path / "syncd.toml", sshd, Path(sshd.home), db_url, state,
                          source=local_source(folder))
    return config, folder


def drop(folder: Path, name: str, data: bytes) -> None:
    (folder / name).write_bytes(data)
    os.utime(folder / name, (0, 0))


def test_lock_on_a_full_disk_is_a_state_error_and_is_released(mnt: Path) -> None:
    hog = fill(mnt)
    lock = FileLock(mnt / "state" / "syncd.lock")
    with pytest.raises(StateError) as err:
        lock.acquire()  # before: OSError ENOSPC, with the flock kept on a leaked descriptor
    assert f"state.dir {mnt / 'state'} is full" in str(err.value)
    hog.unlink()
    other = FileLock(mnt / "state" / "syncd.lock")
    other.acquire()  # nobody holds it
    other.release()


def test_run_once_on_a_full_state_dir_is_exit_3_naming_it(
    mnt: Path, db_url: str, sshd: SshServer, tmp_path: Path
) -> None:
    prepare_database(db_url)
    state = mnt / "state"
    config, folder = local_config(tmp_path, db_url, sshd, state)
    drop(folder, "settlements_1.xml", GOOD)
    hog = fill(mnt)
    out = run_once(config)  # the lock file cannot even be written
    assert out.returncode == 3, out.stdout + out.stderr  # before: 1, "internal error: OSError: [Errno 28]…"
    assert f"state.dir {state} is full (writing the lock file" in out.stderr, out.stderr
    assert "internal error" not in out.stderr and not imports(db_url)
    hog.unlink()
    assert run_once(config).returncode == 0
    assert [r["file_name"] for r in imports(db_url)] == ["settlements_1.xml"]


@pytest.mark.parametrize("streamed", [False, True])
def test_a_download_into_a_full_state_dir_is_exit_3_and_the_file_waits(
    streamed: bool, mnt: Path, db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    """Room for the lock and the file's first 64 KiB, not for the file: SFTP, whole or applied as it downloads."""
    prepare_database(db_url)
    state = mnt / "state"
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, state,
                          source={"apply_while_downloading": streamed})
    assert run_once(config).returncode == 0  # state.dir and its folders exist
    big = xml_export([counterparty(n) for n in range(1, 8001)])
    assert len(big) > 1 << 20
    sshd.put(remote_dir / "settlements_1.xml", big)
    hog = fill(mnt, leave=256 << 10)
    out = run_once(config)
    assert out.returncode == 3, out.stdout + out.stderr  # before: 6, blaming the source
    assert f"state.dir's folder {state / 'downloads'} is full" in out.stderr, out.stderr
    assert "No space left on device" in out.stderr
    assert (remote_dir / "settlements_1.xml").exists()  # stays on the source for the next run
    assert not imports(db_url) and list((state / "downloads").iterdir()) == []
    hog.unlink()
    again = run_once(config)
    assert again.returncode == 0, again.stdout + again.stderr
    assert [r["file_name"] for r in imports(db_url)] == ["settlements_1.xml"]


def test_a_metrics_file_that_cannot_be_written_is_exit_3_after_the_run(
    db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    prepare_database(db_url)
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, tmp_path / "state")
    sshd.put(remote_dir / "settlements_1.xml", GOOD)
    out = run_once(config, "--metrics-file", str(tmp_path / "no such folder" / "syncd.prom"))
    assert out.returncode == 3, out.stdout + out.stderr  # before: 1, an internal error
    assert "--metrics-file" in out.stderr and "No such file or directory" in out.stderr
    assert "summary: 1 applied" in out.stdout and "Traceback" not in out.stderr
    assert [r["file_name"] for r in imports(db_url)] == ["settlements_1.xml"]


def test_read_only_state_dir_is_exit_3_naming_it(mnt: Path, db_url: str, sshd: SshServer, tmp_path: Path) -> None:
    prepare_database(db_url)
    state = mnt / "state"
    config, folder = local_config(tmp_path, db_url, sshd, state)
    assert run_once(config).returncode == 0
    drop(folder, "settlements_1.xml", GOOD)
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    out = run_once(config)
    assert out.returncode == 3, out.stdout + out.stderr  # before: 1
    assert f"state.dir {state} is on a read-only file system" in out.stderr
    assert not imports(db_url)
    subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
    assert run_once(config).returncode == 0
    assert [r["file_name"] for r in imports(db_url)] == ["settlements_1.xml"]


# ---------------------------------------------------------------- a state dir of another user (issue 15)


def as_nobody(config: Path) -> subprocess.CompletedProcess[str]:
    """`syncd run-once` as the unprivileged user `nobody`.

    The suite's interpreter lives under /root (0700): the process keeps CAP_DAC_READ_SEARCH to read its
    own code. That capability grants no write permission anywhere, and writing is what this is about.
    """
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
           "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
           sys.executable, "-m", "syncd", "run-once", "--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env(), cwd="/")


def test_a_state_dir_made_by_root_and_used_by_another_user_is_exit_3_naming_both(
    db_url: str, sshd: SshServer, tmp_path: Path
) -> None:
    prepare_database(db_url)
    state = tmp_path / "state"
    config, folder = local_config(tmp_path, db_url, sshd, state)
    config.chmod(0o644)
    assert run_once(config).returncode == 0  # a first run by hand, as root
    drop(folder, "settlements_1.xml", GOOD)
    out = as_nobody(config)
    assert out.returncode == 3, out.stdout + out.stderr  # before: 1
    assert f"state.dir {state}" in out.stderr
    assert "belongs to root" in out.stderr and "syncd runs as user nobody" in out.stderr
    assert f"chown -R nobody: {state}" in out.stderr
    assert "Traceback" not in out.stderr and not imports(db_url)
    assert [r["exit_code"] for r in runs(db_url)] == [0, 3]

    subprocess.run(["chown", "-R", "nobody:", str(state)], check=True)
    folder.chmod(0o777)  # the source folder too: the file is moved to processed/ after it is applied
    ok = as_nobody(config)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert [r["file_name"] for r in imports(db_url)] == ["settlements_1.xml"]


# ---------------------------------------------------------------- the daemon goes on (issue 17)


def test_daemon_on_a_full_state_dir_fails_runs_with_3_then_recovers_without_restart(
    mnt: Path, db_url: str, sshd: SshServer, remote_dir: Path, tmp_path: Path
) -> None:
    prepare_database(db_url)
    state = mnt / "state"
    config = write_config(tmp_path / "syncd.toml", sshd, remote_dir, db_url, state, schedule=FAST)
    sshd.put(remote_dir / "settlements_1.xml", GOOD)
    hog = fill(mnt)
    with daemon(config, tmp_path) as d:
        wait_for("two runs failed with exit 3", lambda: [r["exit_code"] for r in runs(db_url)][:2] == [3, 3])
        d.wait_log(f"run failed: state.dir {state} is full")
        hog.unlink()
        # Before: "run skipped: another syncd run holds …/syncd.lock" on every run, until a restart.
        wait_for("the export applied once there is room", lambda: applied_names(db_url) == ["settlements_1.xml"])
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=30) == 0
    assert "another syncd run holds" not in d.text()
    assert "Traceback" not in d.text()
    codes = [r["exit_code"] for r in runs(db_url)]
    assert set(codes[:codes.index(0)]) == {3}
