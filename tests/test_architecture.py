"""The package's shape, read from its source with ``ast``: no import cycles, no module using
another module's underscore names, small modules and functions.

Imports under ``TYPE_CHECKING`` and inside functions count: a cycle hidden from the
interpreter still ties two modules together for a reader. See docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "linea_luigi"
#: "no module over about 450 lines, no function over about 60 lines" (issue 14)
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
#: underscore attributes of other libraries' objects, not of ours: namedtuple's public
#: ``_make``, s3fs's ``_call_s3`` (its only way to send one S3 request), fsspec's ``_parent``,
#: Luigi's ``StoredTask._task`` (the only place it keeps the task id it records)
FOREIGN_PRIVATES = {"_make", "_call_s3", "_parent", "_task"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def tree(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text())


def resolve(name: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` in module ``name`` reads from."""
    if node.level == 0:
        return node.module or ""
    is_package = modules()[name].name == "__init__.py"
    base = name.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported(name: str) -> Iterator[tuple[str, str | None, int]]:
    """(module, name imported from it or None, line) for every import of ours in ``name``."""
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "linea_luigi":
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = resolve(name, node)
            if source.split(".")[0] != "linea_luigi":
                continue
            for alias in node.names:
                yield source, alias.name, node.lineno


def depends_on(name: str) -> set[str]:
    """Our modules ``name`` imports (a package's submodule counts as that submodule)."""
    found = set()
    for source, item, _ in imported(name):
        candidate = f"{source}.{item}" if item else source
        found.add(candidate if candidate in modules() else source)
    found.discard(name)
    return {m for m in found if m in modules()}


def import_graph() -> dict[str, set[str]]:
    return {m: depends_on(m) for m in modules()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of modules (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def is_private(attr: str) -> bool:
    return attr.startswith("_") and not attr.startswith("__")


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_check_can_fail() -> None:
    """A cycle through three modules is one group; a diamond is none."""
    ring = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(ring) == [["a", "b", "c"]]
    assert cycles({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) == []
    # relative imports resolve against the importing module (a package's __init__ is itself)
    node = ast.parse("from ..db import engine").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert resolve("linea_luigi.store.gc", node) == "linea_luigi.db"
    assert "linea_luigi.db.engine" in depends_on("linea_luigi.db.setup")


def test_no_module_imports_another_modules_underscore_names() -> None:
    offenders = [
        f"{name}:{line} imports {item} from {source}"
        for name in modules()
        for source, item, line in imported(name)
        if item is not None and is_private(item)
    ]
    assert offenders == []


def test_no_module_reaches_into_another_objects_underscore_attributes() -> None:
    """``x._name`` is only for ``self`` and ``cls``: what another module needs is public."""
    offenders = []
    for name in modules():
        for node in ast.walk(tree(name)):
            if not (isinstance(node, ast.Attribute) and is_private(node.attr)):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if node.attr in FOREIGN_PRIVATES:
                continue
            offenders.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    assert offenders == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_are_small(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines"


def test_functions_are_small() -> None:
    long = [
        f"{name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name in modules()
        for node in ast.walk(tree(name))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []
