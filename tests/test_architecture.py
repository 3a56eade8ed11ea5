"""The layout rules a newcomer relies on, checked on the source itself (no imports run).

- No two packages import each other: the import graph between broadcaster's
  subpackages and top-level modules has no cycle.
- Modules stay small: one job each, none over MAX_LINES lines.
- pipecat and LiveKit private names are used in broadcaster/sdk_internals.py only.
- A LiveKit join with a time limit goes through broadcaster/room_connect.py.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "broadcaster"
MAX_LINES = 400


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


def test_modules_are_small() -> None:
    long = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            long[rel] = lines
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b": {"a.x"}}, "b": {"c": {"b.y"}}, "c": {"a": {"c.z"}}, "d": {"a": {"d"}}}
    assert cycles(graph) == [["a", "b", "c"]]



# ------------------------------------------------------------------ SDK internals, fenced
ROOT = PACKAGE.parent
SDK = ("pipecat", "livekit")
FENCE = PACKAGE / "sdk_internals.py"
#: the fence's second file (the LiveAvatar client), listed in FENCE's PRIVATE_NAMES too
FENCES = {FENCE, PACKAGE / "sdk_internals_heygen.py"}
#: where private SDK names may appear: the fence itself and its test
FENCED = {*FENCES, ROOT / "tests" / "test_sdk_internals.py"}
#: private by name, public by documentation
DOCUMENTED = {"_exit"}  # os._exit


def source_files() -> list[Path]:
    return sorted(p for d in ("broadcaster", "probes", "tests", "bench")
                  for p in (ROOT / d).rglob("*.py"))


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def own_private_names(paths: list[Path]) -> set[str]:
    """Private names the project defines itself (functions, classes, its own attributes)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                  and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                names.add(node.attr)
            elif isinstance(node, ast.keyword) and node.arg:
                names.add(node.arg)  # e.g. SimpleNamespace(_field=...) stand-ins
    return {n for n in names if is_private(n)}


def test_sdk_internals_are_used_in_one_place() -> None:
    """No private SDK module is imported, and no private name of an object the project
    does not define is touched, outside broadcaster/sdk_internals.py."""
    paths = source_files()
    own = own_private_names(paths)
    problems = []
    for path in paths:
        if path in FENCED:
            continue
        rel = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for module in modules:
                if module.startswith(SDK) and any(map(is_private, module.split("."))):
                    problems.append(f"{rel}:{node.lineno}: imports {module}")
            on_self = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("self", "cls")
            if (isinstance(node, ast.Attribute) and is_private(node.attr) and not on_self
                    and node.attr not in own and node.attr not in DOCUMENTED):
                problems.append(f"{rel}:{node.lineno}: uses .{node.attr} of an object "
                                "broadcaster does not define")
    assert not problems, "go through broadcaster/sdk_internals.py:\n" + "\n".join(problems)


def sdk_private_members(cls: type) -> dict[str, str]:
    """Private names the SDK classes among ``cls``'s bases define or assign on self."""
    import inspect
    import textwrap

    found: dict[str, str] = {}
    for klass in cls.__mro__[1:]:
        if not (klass.__module__ or "").startswith(SDK):
            continue
        where = f"{klass.__module__}.{klass.__qualname__}"
        for name in vars(klass):
            if is_private(name):
                found.setdefault(name, where)
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "self" and is_private(node.attr)):
                found.setdefault(node.attr, where)
    return found


def test_subclasses_touch_no_sdk_private_name() -> None:
    """A class of ours that extends a pipecat / LiveKit class neither reads nor overrides
    the base's private names (pipecat's event-handler API excepted)."""
    import importlib
    import inspect

    from broadcaster.sdk_internals import SUBCLASS_API

    allowed = {entry.name for entry in SUBCLASS_API}
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in FENCES or path.name == "__main__.py":
            continue
        module = importlib.import_module(module_name(path))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            cls = getattr(module, node.name, None)
            if not inspect.isclass(cls):
                continue
            sdk = sdk_private_members(cls)
            for sub in ast.walk(node):
                name = None
                if (isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name)
                        and sub.value.id == "self"):
                    name = sub.attr
                elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    name = sub.name
                if name in sdk and name not in allowed:
                    problems.append(f"{path.relative_to(ROOT)}:{sub.lineno}: {node.name} uses "
                                    f"{name}, private to {sdk[name]}")
    assert not problems, "go through broadcaster/sdk_internals.py:\n" + "\n".join(
        sorted(set(problems)))


def test_room_joins_with_a_time_limit_go_through_connect_room() -> None:
    """``wait_for(room.connect(…))`` can end the process 15 s later (see
    broadcaster/room_connect.py): every limited join goes through ``connect_room``."""
    problems = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            fn, first = node.func, node.args[0]
            called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if (called in ("wait_for", "timeout", "shield") and isinstance(first, ast.Call)
                    and isinstance(first.func, ast.Attribute) and first.func.attr == "connect"):
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not problems, "use broadcaster.room_connect.connect_room:\n" + "\n".join(problems)
