"""`make mutate`: cosmic-ray over the modules that hold the README's promises (see docs/testing.md).

Never touches the work tree: the tracked and new files are copied to build/mutate/src, and cosmic-ray
mutates that copy in place, one mutant at a time. Each mutant runs only the test files that hold the
promises of its module (`-x`: the first failure kills it), against one MariaDB started for the whole
mutation run (SYNCD_TEST_DATABASE_URL), so a mutant costs a pytest start, not a server start.

    python tools/mutate.py [MODULE…] [--tests FILE…] [--out DIR]

MODULE is a key of TARGETS (default: all). Results: DIR/MODULE.sqlite (cosmic-ray's session; `cr-report`
reads it) and DIR/MODULE.txt (the score and every surviving mutant with its line).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Target:
    path: str
    functions: tuple[str, ...]  # the definitions that hold promises; () = the whole module
    tests: tuple[str, ...]
    select: str = ""  # pytest -k: the tests of those files that reach the definitions


TARGETS = {
    "runner": Target(
        "syncd/run/runner.py",
        ("_handle", "_done_before"),
        ("tests/test_exit_codes.py", "tests/test_promises.py", "tests/test_apply.py", "tests/test_cli_run.py")),
    "outcome": Target(
        "syncd/run/outcome.py", ("exit_code", "count"),
        ("tests/test_exit_codes.py", "tests/test_promises.py", "tests/test_cli_run.py")),
    "guard": Target(
        "syncd/bitrix/hlblock.py", ("_apply_missing", "_missing", "_guard"),
        ("tests/test_promises.py", "tests/test_apply.py"), "guard or missing or held or approve or empty"),
    "validate": Target(
        "syncd/contract/checks.py", ("finish", "set_summary"),
        ("tests/test_validate.py", "tests/test_cli_validate.py", "tests/test_corpus.py", "tests/test_promises.py")),
    "lock": Target("syncd/plumbing/lock.py", (), ("tests/test_lock.py", "tests/test_promises.py", "tests/test_exit_codes.py"),
                   "lock or runner or exit_8"),
    "status": Target("syncd/admin/status.py", ("check", "succeeded_within", "applied_age", "data_age"),
                     ("tests/test_promises.py", "tests/test_run_ops.py"), "check or stale or metric"),
    "journal": Target("syncd/run/record.py", ("last_success",),
                      ("tests/test_promises.py", "tests/test_run_ops.py"), "check or stale or metric"),
}

# Operators kept: those that change what a run decides. Left out: binary operators other than + - * /
# (`X | None` in annotations, `/` joining paths: noise, nearly all equivalent) and comparisons turned
# into identity tests (`==` -> `is`), which CPython's interning makes equivalent for small ints and names.
KEEP = re.compile(
    r"core/(AddNot|ReplaceTrueWithFalse|ReplaceFalseWithTrue|ReplaceAndWithOr|ReplaceOrWithAnd|NumberReplacer"
    r"|ExceptionReplacer|ZeroIterationForLoop|ReplaceContinueWithBreak|ReplaceBreakWithContinue"
    r"|ReplaceUnaryOperator_.*|ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE|Is|IsNot|In|NotIn)_"
    r"(Eq|NotEq|Lt|LtE|Gt|GtE|In|NotIn)|ReplaceComparisonOperator_(Is_IsNot|IsNot_Is)"
    r"|ReplaceBinaryOperator_(Add|Sub|Mul|Div)_(Add|Sub|Mul|Div))$"
)


def copy_tree(dest: Path) -> None:
    """The work tree as it is (tracked and new files, no ignored ones) into `dest`."""
    if dest.exists():
        shutil.rmtree(dest)
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def write_config(src: Path, out: Path, name: str, target: Target, tests: tuple[str, ...]) -> Path:
    cmd = (f"{BIN / 'python'} -m pytest -x -q -p no:cacheprovider --timeout 180 "
           + " ".join(t for t in tests if (src / t).exists()))
    if target.select:
        cmd += f" -k '{target.select}'"
    config = out / f"{name}.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{target.path}"\n'
        "timeout = 600.0\n"
        "excluded-modules = []\n"
        f'test-command = "{cmd}"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n', encoding="utf-8")
    return config


def skip_outside(session: Path, target: Target) -> None:
    """Mark as skipped the mutants of operators not kept, or outside the promise-holding definitions."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session)) as db:
        for item in list(db.pending_work_items):
            if any(not KEEP.match(m.operator_name)
                   or (target.functions and m.definition_name not in target.functions) for m in item.mutations):
                db.set_result(item.job_id, WorkResult(output="filtered by tools/mutate.py",
                                                      worker_outcome=WorkerOutcome.SKIPPED))


def report(session: Path, src: Path, target: Target) -> str:
    db = sqlite3.connect(session)
    rows = db.execute(
        "SELECT s.operator_name, s.start_pos_row, s.definition_name, r.test_outcome, s.job_id "
        "FROM mutation_specs s JOIN work_results r ON r.job_id = s.job_id "
        "WHERE r.worker_outcome = 'NORMAL' AND r.test_outcome IN ('KILLED', 'SURVIVED') "
        "ORDER BY s.start_pos_row").fetchall()
    db.close()
    lines = (src / target.path).read_text(encoding="utf-8").splitlines()
    killed = sum(1 for r in rows if r[3] == "KILLED")
    survived = [r for r in rows if r[3] == "SURVIVED"]
    score = 100.0 * killed / len(rows) if rows else 0.0
    out = [f"{target.path}: {killed} of {len(rows)} mutants killed ({score:.1f}%), {len(survived)} survived"]
    for op, line, definition, _outcome, job in survived:
        out.append(f"  {target.path}:{line} {definition} {op.removeprefix('core/')} [{job[:8]}]: "
                   f"{lines[line - 1].strip()}")
    return "\n".join(out) + "\n"


def run_target(name: str, target: Target, src: Path, out: Path, tests: tuple[str, ...],
               survivors_of: Path | None, resume: bool) -> str:
    config = write_config(src, out, name, target, tests)
    session = out / f"{name}.sqlite"
    if resume and session.exists():
        skip_outside(session, target)  # the targets may have narrowed since
    elif survivors_of is not None:
        # The same mutants as an earlier run of the same source: only its survivors run again (a test
        # added since can only kill more), the rest keep their result.
        session.unlink(missing_ok=True)
        shutil.copy(survivors_of / f"{name}.sqlite", session)
        db = sqlite3.connect(session)
        with db:
            db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")
        db.close()
    else:
        session.unlink(missing_ok=True)
        subprocess.run([BIN / "cosmic-ray", "init", config, session], cwd=src, check=True)
        skip_outside(session, target)
    subprocess.run([BIN / "cosmic-ray", "exec", config, session], cwd=src, check=True)
    text = report(session, src, target)
    (out / f"{name}.txt").write_text(text, encoding="utf-8")
    return text


def verify(session: Path, job: str, tests: list[str], out: Path) -> bool:
    """Apply one mutant (by job id prefix) of `session` to a fresh copy and run `tests`: True when killed."""
    db = sqlite3.connect(session)
    [(diff,)] = db.execute("SELECT diff FROM work_results WHERE job_id LIKE ?", (job + "%",)).fetchall()
    db.close()
    src = out / "verify"
    copy_tree(src)
    patch = diff.split("--- mutation diff ---", 1)[-1].lstrip("\n")
    subprocess.run(["patch", "-p1", "--quiet"], input=patch.encode(), cwd=src, check=True)
    done = subprocess.run([BIN / "python", "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=src)
    return done.returncode != 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"of: {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--tests", nargs="*", help="test files for every module instead of TARGETS' own")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "mutate")
    parser.add_argument("--tests-from", metavar="REV",
                        help="the tests/ folder of git revision REV instead of the work tree's (a score 'before')")
    parser.add_argument("--resume", action="store_true", help="go on with DIR's unfinished sessions")
    parser.add_argument("--rerun-survivors", type=Path, metavar="DIR",
                        help="start from DIR's sessions (same source) and run only their surviving mutants")
    parser.add_argument("--verify", nargs=2, metavar=("SESSION", "JOB"),
                        help="apply one mutant of SESSION to a fresh copy and run --tests against it")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    if args.verify:
        killed = verify(Path(args.verify[0]).resolve(), args.verify[1], args.tests or [], out)
        print(f"{args.verify[1]}: {'killed' if killed else 'SURVIVED'} by {' '.join(args.tests or [])}")
        sys.exit(0 if killed else 1)
    src = out / "src"
    out.mkdir(parents=True, exist_ok=True)
    copy_tree(src)
    if args.tests_from:
        shutil.rmtree(src / "tests")
        archive = subprocess.run(["git", "archive", args.tests_from, "tests"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x"], input=archive, cwd=src, check=True)
    sys.path.insert(0, str(src))
    from tests.rig.mariadb import running_mariadb

    with running_mariadb() as server:
        os.environ["SYNCD_TEST_DATABASE_URL"] = server.url.render_as_string(hide_password=False)
        for name in args.modules or list(TARGETS):
            target = TARGETS[name]
            text = run_target(name, target, src, out, tuple(args.tests) if args.tests else target.tests,
                              args.rerun_survivors, args.resume)
            print(text, end="", flush=True)


if __name__ == "__main__":
    main()
