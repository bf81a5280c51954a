"""The package stays easy to live in: no module over 500 lines, no import cycle at any depth.

Imports inside functions count (they still form a cycle at run time); imports under
``if TYPE_CHECKING:`` do not (they never run). See docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_rollout"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_time_imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Package modules ``module`` imports when it runs (top level or inside functions)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known
            found.update(submodules)
            if len(submodules) < len(node.names):  # names defined in `base` itself
                found.add(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    edges = set()
    for name in found:
        # `import a.b.c` runs a, a.b and a.b.c; keep the deepest module of the package it names.
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            edges.add(name)
    return edges


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    # A package's __init__ importing its own submodules is not a cycle; a submodule importing a
    # name from its package's __init__ is an explicit edge and counts.
    return {name: _run_time_imports(path, name, known) for name, path in modules.items()}


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules (docs/architecture.md): {long}"


def test_no_import_cycle_at_any_depth() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    """The check can fail: an import inside a function that closes a loop is found."""
    a = tmp_path / "a.py"
    a.write_text("import b\n")
    b = tmp_path / "b.py"
    b.write_text("def f():\n    import a\n")
    c = tmp_path / "c.py"
    c.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n")
    known = {"a", "b", "c"}
    graph = {m: _run_time_imports(tmp_path / f"{m}.py", m, known) for m in known}
    assert graph["c"] == set(), "TYPE_CHECKING imports never run"
    assert _cycle(graph) == ["a", "b", "a"]


@pytest.mark.parametrize("layer", ["_state", "stats", "instants", "redact", "net", "durations"])
def test_bottom_layers_import_nothing_above_them(layer: str) -> None:
    graph = _graph()
    allowed = {"pytest_rollout.stats"} | {m for m in graph if m.startswith("pytest_rollout.stats")}
    for module in (
        m
        for m in graph
        if m == f"pytest_rollout.{layer}" or m.startswith(f"pytest_rollout.{layer}.")
    ):
        above = graph[module] - allowed
        assert not above, f"{module} imports {sorted(above)}; see docs/architecture.md"
