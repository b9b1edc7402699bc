"""The layout promises of the README's Layout section: no import circles, rooms that only lean one way,
the CLI and the daemon calling only the run and admin rooms, small modules and functions."""

from __future__ import annotations

import ast

import pytest

from tests.layout import ROOT, cycles, graph, modules, room, rooms

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60
# What the entry points may use: the rooms they call, and what every room stands on.
ENTRY_POINTS = ("syncd.cli", "syncd.daemon")
ENTRY_MAY_USE = {"syncd", "syncd.run", "syncd.admin", "syncd.plumbing", "syncd.config", "syncd.errors",
                 "syncd.daemon", "syncd.cli"}


def test_the_graph_sees_imports_inside_functions() -> None:
    # The circles of old hid in imports inside functions (runner -> status); a graph of module-level
    # imports only would not have seen them.
    deps = graph()
    assert "syncd.run" in deps["syncd.daemon"]  # imported inside run_daemon's helpers
    assert "syncd.admin.validate" in deps["syncd.cli.commands"]


def test_no_module_imports_itself_back() -> None:
    assert cycles(graph()) == []


def test_no_room_leans_on_a_room_that_leans_back() -> None:
    assert cycles(rooms()) == []


def test_cycles_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_contract_stands_on_nothing_but_the_errors() -> None:
    assert rooms()["syncd.contract"] <= {"syncd.errors"}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_cli_and_daemon_call_only_the_run_and_admin_rooms(entry: str) -> None:
    deps = graph()
    mine = [m for m in deps if room(m) == entry]
    assert mine, entry
    used = {room(d) for m in mine for d in deps[m]} - {entry}
    assert used <= ENTRY_MAY_USE, f"{entry} reaches into {sorted(used - ENTRY_MAY_USE)}"


def test_no_module_is_over_600_lines() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_is_over_60_lines() -> None:
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert long == []


def test_each_package_names_its_modules() -> None:
    """Each package's __init__ says what its modules are for: a reader starts there."""
    for package in sorted(p.parent for p in ROOT.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        if package == ROOT:
            continue
        own = sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")
        own += sorted(p.name for p in package.iterdir() if (p / "__init__.py").exists())
        unnamed = [m for m in own if f"`{m}`" not in doc and f"{m}." not in doc and f"`{m}." not in doc]
        assert unnamed == [], f"{package.relative_to(ROOT.parent)}/__init__.py does not name {unnamed}"
