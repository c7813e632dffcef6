"""The kernel's modules form a layered graph: no module imports (at load time or inside a
function) a module that imports it back, directly or through others. An import circle makes
the import order matter, hides which module owns a piece, and breaks when one side moves its
import to the top (docs/kernel.md, "Module layering")."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

KERNEL = Path(__file__).resolve().parents[1] / "core" / "tessera"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(KERNEL.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _kernel_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(KERNEL.rglob("*.py")) if "piccolo_migrations" not in p.parts}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The kernel modules ``name`` imports anywhere in its body (blocks that only type
    checkers read are left out: they never run)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    found.add(f"{target}.{alias.name}")
                elif target in modules:
                    found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return circles


def _graph() -> dict[str, set[str]]:
    modules = _kernel_modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_the_graph_walk_sees_a_circle() -> None:
    """The checker itself: a circle of three and a self-contained pair are found, a chain is not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": set(), "f": {"g"}, "g": {"f"}}
    assert _cycles(graph) == [["a", "b", "c"], ["f", "g"]]


def test_the_graph_walk_reads_lazy_and_relative_imports() -> None:
    graph = _graph()
    # cli_kernel imports tessera.app inside run_kernel (lazily): still an edge.
    assert "tessera.app" in graph["tessera.cli_kernel"]
    assert {"tessera.cli_kernel", "tessera.search.cli", "tessera.importer_cli"} <= graph["tessera.cli"]
    assert "tessera.search.indexer" in graph["tessera.search.whoosh_backend"]


def test_kernel_modules_import_each_other_without_circles() -> None:
    circles = _cycles(_graph())
    assert circles == [], f"import circles among kernel modules: {circles}"


@pytest.mark.parametrize("name", sorted(_kernel_modules()))
def test_every_kernel_module_imports_on_its_own(name: str) -> None:
    importlib.import_module(name)
