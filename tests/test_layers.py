"""The import rules of the code base, read from the source (nothing is imported):

- first-party code is imported as `otmetka.*`, never under a bare folder name;
- imports point down the layers: entry points -> runtime -> features -> exchange -> core ->
  site_builder -> db;
- no two modules import each other, directly or round a longer loop, even inside a layer;
- no first-party import inside a function body (the CLI aside: its commands load features
  lazily).

Each failure names the file, the line and both ends of the import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("daemon", "site_builder", "db")
BARE = set(FOLDERS)
FEATURES = ("acts", "access", "lists", "mail", "paper", "ops")
ENTRY_POINTS = ("cli", "runner", "endpoint", "demo")
# Top to bottom: a module may import from its own layer or the ones below it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entry points", tuple(f"otmetka.daemon.{name}" for name in ENTRY_POINTS)),
    ("runtime", ("otmetka.daemon.runtime",)),
    ("features", tuple(f"otmetka.daemon.{name}" for name in FEATURES)),
    ("exchange", ("otmetka.daemon.exchange",)),
    ("core", ("otmetka.daemon.core",)),
    ("site_builder", ("otmetka.site_builder",)),
    ("db", ("otmetka.db",)),
)
LAZY_ALLOWED = ("otmetka.daemon.cli",)


@dataclass(frozen=True)
class Edge:
    source: str  # module names
    target: str
    path: str  # the importing file, relative to the project
    line: int
    in_function: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["otmetka", *parts])


def _sources() -> dict[str, Path]:
    found = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _sources()


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _layer(module: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(_within(module, prefix) for prefix in prefixes):
            return index
    return None


def _resolve(name: str) -> str:
    """The first-party module an imported name lives in: the longest known prefix."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    named = [f"{base}.{alias.name}" for alias in node.names]
    return [name if name in MODULES else base for name in named]


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, and whether it stands inside a function body."""

    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, False
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            inner = [
                node for node in ast.walk(child) if isinstance(node, ast.Import | ast.ImportFrom)
            ]
            yield from ((node, True) for node in inner)
        else:
            yield from _imports(child)


def _scan() -> tuple[list[Edge], list[str]]:
    """First-party import edges, and imports under a bare folder name."""
    edges, bare = [], []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        shown = str(path.relative_to(ROOT))
        for node, in_function in _imports(tree):
            for name in _targets(node, module, path.name == "__init__.py"):
                if name.split(".")[0] in BARE:
                    bare.append(f"{shown}:{node.lineno}: imports bare `{name}`; use otmetka.{name}")
                    continue
                target = _resolve(name) if name.startswith("otmetka.") else ""
                if target:
                    edges.append(Edge(module, target, shown, node.lineno, in_function))
    return list(dict.fromkeys(edges)), bare  # `from x import a, b`: one edge per module


EDGES, BARE_IMPORTS = _scan()


def _layer_name(module: str) -> str:
    index = _layer(module)
    return "no layer" if index is None else LAYERS[index][0]


def test_modules_are_found() -> None:
    assert "otmetka.daemon.runtime" in MODULES and "otmetka.db" in MODULES
    assert len(EDGES) > 100


def test_no_bare_first_party_names() -> None:
    assert not BARE_IMPORTS, "\n" + "\n".join(BARE_IMPORTS)


def test_every_module_has_a_layer() -> None:
    roots = {"otmetka.daemon"}  # the package itself: its docstring, no code
    lost = [
        f"{path.relative_to(ROOT)}: {module} is in no layer; add its package to LAYERS"
        for module, path in MODULES.items()
        if module not in roots and _layer(module) is None
    ]
    assert not lost, "\n" + "\n".join(lost)


def test_imports_point_down_the_layers() -> None:
    up = []
    for edge in EDGES:
        source, target = _layer(edge.source), _layer(edge.target)
        if source is None or target is None or target >= source:
            continue
        up.append(
            f"{edge.path}:{edge.line}: {_layer_name(edge.source)} ({edge.source}) imports "
            f"{_layer_name(edge.target)} ({edge.target}), a layer above it"
        )
    assert not up, "\n" + "\n".join(up)


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected groups of more than one module (or one importing itself)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is a few hundred nodes
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _loop(group: list[str], edges: list[Edge]) -> list[Edge]:
    """One concrete loop through the group's first module, as the imports that make it."""
    inside = set(group)
    by_source: dict[str, list[Edge]] = {}
    for edge in edges:
        if edge.source in inside and edge.target in inside:
            by_source.setdefault(edge.source, []).append(edge)
    start = group[0]
    paths: dict[str, list[Edge]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for edge in by_source.get(node, []):
            if edge.target == start:
                return [*paths[node], edge]
            if edge.target not in paths:
                paths[edge.target] = [*paths[node], edge]
                queue.append(edge.target)
    return []


def test_no_import_cycles() -> None:
    found = []
    for group in _cycles(EDGES):
        loop = " -> ".join([group[0], *(edge.target for edge in _loop(group, EDGES))])
        where = ", ".join(
            f"{edge.path}:{edge.line} ({_layer_name(edge.source)} -> {_layer_name(edge.target)})"
            for edge in _loop(group, EDGES)
        )
        found.append(f"import cycle among {len(group)} modules: {loop}\n    at {where}")
    assert not found, "\n" + "\n".join(found)


def test_no_first_party_import_inside_a_function() -> None:
    lazy = [
        f"{edge.path}:{edge.line}: {_layer_name(edge.source)} ({edge.source}) imports "
        f"{_layer_name(edge.target)} ({edge.target}) inside a function; import it at the top"
        for edge in EDGES
        if edge.in_function and not any(_within(edge.source, p) for p in LAZY_ALLOWED)
    ]
    assert not lazy, "\n" + "\n".join(lazy)


@pytest.mark.parametrize(
    ("source", "target", "up"),
    [
        ("otmetka.daemon.exchange.importer", "otmetka.daemon.lists.settle", True),
        ("otmetka.daemon.lists.settle", "otmetka.daemon.exchange.importer", False),
        ("otmetka.daemon.runtime", "otmetka.daemon.cli", True),
        ("otmetka.site_builder.build", "otmetka.daemon.core.errors", True),
        ("otmetka.db.models", "otmetka.db.connection", False),
    ],
)
def test_the_layer_order_itself(source: str, target: str, up: bool) -> None:
    assert (_layer(target) < _layer(source)) is up  # type: ignore[operator]
