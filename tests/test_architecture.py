"""The layout rules a newcomer relies on, checked on the source itself (no imports run).

- No two packages import each other: the import graph between broadcaster's
  subpackages and top-level modules has no cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "broadcaster"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The node a module belongs to: its subpackage, or itself for a top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2])


def imports(path: Path) -> set[str]:
    """Every broadcaster module ``path`` imports, at any depth (lazy imports count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this package
                base = here.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return {m for m in found if m == "broadcaster" or m.startswith("broadcaster.")}


def package_graph() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> the importing modules (for the failure message).

    ``__main__`` modules are left out: they are entry points that nothing imports,
    so an edge from one cannot close a cycle (``python -m broadcaster.bot`` runs the
    CLI, which imports the bot).
    """
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__main__.py":
            continue
        src = module_name(path)
        for target in imports(path):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]  # ``from pkg.mod import name``
            if target == "broadcaster" or unit(target) == unit(src):
                continue
            graph[unit(src)][unit(target)].add(src)
    return graph


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_two_packages_import_each_other() -> None:
    graph = package_graph()
    assert "broadcaster.bot" in graph and "broadcaster.config" in graph["broadcaster.bot"]
    problems = []
    for component in cycles(graph):
        edges = [f"  {a} -> {b} (in {', '.join(sorted(graph[a][b]))})"
                 for a in component for b in component if b in graph.get(a, {})]
        problems.append(f"cycle between {', '.join(component)}:\n" + "\n".join(edges))
    assert not problems, "\n".join(problems)


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b": {"a.x"}}, "b": {"c": {"b.y"}}, "c": {"a": {"c.z"}}, "d": {"a": {"d"}}}
    assert cycles(graph) == [["a", "b", "c"]]

