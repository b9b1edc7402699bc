"""syncd's import graph, read from the source (every import, also those inside functions): for the
layout tests and for `python -m tests.layout`, which prints the rooms and what each one uses."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "syncd"


def modules() -> dict[str, Path]:
    """Every module of syncd by dotted name (a package by its own name, for its __init__)."""
    found: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(tree: ast.AST, here: str, known: dict[str, Path]) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("syncd"):
                # Importing a.b.c runs a/__init__ and a/b/__init__ first.
                parts = name.split(".")
                for i in range(2, len(parts) + 1):
                    prefix = ".".join(parts[:i])
                    if prefix in known and prefix != here and not here.startswith(prefix + "."):
                        yield prefix
                if name in known and name != here:
                    yield name


def graph() -> dict[str, set[str]]:
    """module -> the syncd modules it imports."""
    known = modules()
    return {name: set(_imported(ast.parse(path.read_text()), name, known)) for name, path in known.items()}


def room(module: str) -> str:
    """The room a module lives in: its package under syncd, or itself for a top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2])


def rooms() -> dict[str, set[str]]:
    """room -> the other rooms its modules import."""
    out: dict[str, set[str]] = {}
    for module, deps in graph().items():
        mine = room(module)
        out.setdefault(mine, set()).update(room(d) for d in deps if room(d) != mine and d != "syncd")
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    for name, deps in sorted(rooms().items()):
        print(f"{name:16} -> {', '.join(sorted(deps)) or '-'}")
    print("module cycles:", cycles(graph()))
    print("room cycles:", cycles(rooms()))
