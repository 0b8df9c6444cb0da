"""The layout's rules, checked over the source: import arrows, no cycles, no Litestar outside api/, file sizes."""

from __future__ import annotations

import ast
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("api", "personalization", "render", "chain", "jobs", "pipeline", "processes", "ipfs", "webhooks", "config",
            "observability", "devstack", "cli")  # fmt: skip
LIBRARIES = ("personalization", "render", "chain")
MAX_LINES = 700


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _sources() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The first-party module an import names (a name imported from a package resolves to its submodule)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def _imports() -> dict[str, frozenset[str]]:
    """Every import in a module, wherever it sits (top level, in a function, under TYPE_CHECKING)."""
    modules = _sources()
    graph: dict[str, frozenset[str]] = {}
    for module, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[module] = frozenset(found)
    return graph


def _first_party(module: str) -> set[str]:
    modules = _sources()
    resolved = {_resolve(name, modules) for name in _imports()[module]}
    return {name for name in resolved if name is not None and name != module}


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in _first_party(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _top(module: str) -> str:
    return module.partition(".")[0]


def test_no_import_cycles() -> None:
    # Tarjan's strongly connected components over the module graph: any component of two or
    # more modules is a loop of imports.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(module: str) -> None:
        index[module] = low[module] = counter[0]
        counter[0] += 1
        stack.append(module)
        on_stack.add(module)
        for nxt in _first_party(module):
            # a package's __init__ is imported by its submodules' own imports; only real edges count
            if nxt not in index:
                visit(nxt)
                low[module] = min(low[module], low[nxt])
            elif nxt in on_stack:
                low[module] = min(low[module], index[nxt])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(_sources()):
        if module not in index:
            visit(module)
    assert cycles == []


def test_litestar_only_in_api() -> None:
    offenders = {
        module
        for module in _sources()
        if _top(module) != "api" and any(_top(name) == "litestar" for name in _imports()[module])
    }
    assert offenders == set()


def test_background_processes_never_reach_http_code() -> None:
    for module in _sources():
        if _top(module) in ("processes", "pipeline", "jobs"):
            reached = {_top(name) for name in _reachable(module)}
            assert "api" not in reached, module
            assert "devstack" not in reached, module


def test_api_imports_no_process() -> None:
    offenders = {
        (module, name)
        for module in _sources()
        if _top(module) == "api"
        for name in _first_party(module)
        if _top(name) in ("processes", "devstack", "cli")
    }
    assert offenders == set()


@pytest.mark.parametrize("library", LIBRARIES)
def test_libraries_do_not_import_the_service(library: str) -> None:
    allowed = {"personalization": {"personalization", "chain"}, "render": {"render", "personalization"}}
    permitted = allowed.get(library, {library})
    offenders = {
        (module, name)
        for module in _sources()
        if _top(module) == library
        for name in _first_party(module)
        if _top(name) not in permitted
    }
    assert offenders == set()


def test_no_long_files() -> None:
    long_files = {
        str(path.relative_to(ROOT)): lines
        for path in _sources().values()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long_files == {}


def test_every_package_is_packaged_and_type_checked() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    includes = set(config["tool"]["setuptools"]["packages"]["find"]["include"])
    assert {f"{package}*" for package in PACKAGES} == includes
    assert set(config["tool"]["mypy"]["packages"]) == set(PACKAGES)
    on_disk = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert on_disk == set(PACKAGES)


def test_the_graph_sees_imports() -> None:
    # The checks above are only as good as the graph: known arrows must be in it.
    assert "jobs.codec" in _first_party("api.routes.mints")
    assert "render.errors" in _reachable("processes.pipeline_worker")
