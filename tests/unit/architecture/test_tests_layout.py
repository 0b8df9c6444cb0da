"""The tests' own layout: tests mirror the packages, helpers live in tests/support, no test imports another."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TESTS = ROOT / "tests"
# Top-level packages on disk: the service and libraries, plus tests/ and benchmarks/ themselves.
FIRST_PARTY = frozenset(path.parent.name for path in ROOT.glob("*/__init__.py"))
PRODUCT_PACKAGES = FIRST_PARTY - {"tests", "benchmarks"}
# Unit-test folders that check the whole tree rather than one package.
CROSS_CUTTING = frozenset({"architecture"})


@dataclass(frozen=True)
class Import:
    """One imported name as the importing file wrote it, made absolute."""

    path: Path
    line: int
    module: str  # the module imported, or imported from
    name: str | None  # the name taken from it (`from module import name`); None for `import module`


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _python_files(*folders: Path) -> list[Path]:
    return sorted(path for folder in folders for path in folder.rglob("*.py"))


@cache
def _imports(path: Path) -> tuple[Import, ...]:
    """Every import in a file, wherever it sits (top level, in a function, under TYPE_CHECKING)."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            found += [Import(path, node.lineno, module, alias.name) for alias in node.names]
    return tuple(found)


def _is_test_module(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "tests" and any(part.startswith("test_") or part == "conftest" for part in parts)


def _where(item: Import) -> str:
    return f"{item.path.relative_to(ROOT)}:{item.line}"


def _test_files() -> Iterator[Path]:
    return (path for path in _python_files(TESTS) if path.name.startswith("test_"))


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    offenders = set()
    for path in _python_files(TESTS, ROOT / "benchmarks"):
        for item in _imports(path):
            # `from tests.unit.x import test_y` names a test module too.
            named = f"{item.module}.{item.name}" if item.name else item.module
            if _is_test_module(item.module) or _is_test_module(named):
                offenders.add(f"{_where(item)} imports {named}")
    assert offenders == set(), "shared helpers belong in tests/support"


def test_no_private_name_is_imported_from_first_party_code() -> None:
    offenders = {
        f"{_where(item)} imports {item.name} from {item.module}"
        for path in _python_files(TESTS)
        for item in _imports(path)
        if item.name is not None
        and item.name.startswith("_")
        and not item.name.startswith("__")
        and item.module.partition(".")[0] in FIRST_PARTY
    }
    assert offenders == set(), "make the name public where it is defined, or test through the public one"


def _placed_right(path: Path) -> bool:
    parts = path.relative_to(TESTS).parts
    if len(parts) < 3:
        return False
    if parts[0] == "unit":
        return parts[1] in PRODUCT_PACKAGES | CROSS_CUTTING
    return parts[0] == "integration"


def test_every_test_file_sits_in_its_package_or_flow_folder() -> None:
    misplaced = {str(path.relative_to(ROOT)) for path in _test_files() if not _placed_right(path)}
    assert misplaced == set(), "tests/unit/<package>/ or tests/integration/<flow>/"


def test_helpers_live_in_tests_support() -> None:
    # Anything that is not a test, a conftest or a package marker is a helper for several tests.
    strays = {
        str(path.relative_to(ROOT))
        for path in _python_files(TESTS)
        if not path.name.startswith("test_")
        and path.name not in ("conftest.py", "__init__.py")
        and path.relative_to(TESTS).parts[0] != "support"
    }
    assert strays == set()
    support = {path.relative_to(TESTS).parts[0] for path in _test_files()}
    assert "support" not in support, "tests/support holds helpers, not tests"


def _is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


def test_conftest_files_hold_only_fixtures_and_hooks() -> None:
    offenders = set()
    for path in _python_files(TESTS):
        if path.name != "conftest.py":
            continue
        for node in ast.parse(path.read_text(), str(path)).body:
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if not (_is_fixture(node) or node.name.startswith("pytest_")):
                    offenders.add(f"{where} {node.name}")
            elif isinstance(node, ast.ClassDef):
                offenders.add(f"{where} class {node.name}")
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                offenders.add(f"{where} {ast.unparse(node).splitlines()[0]}")
    assert offenders == set(), "move helpers, types and constants into tests/support"


def test_the_checks_see_imports_and_files() -> None:
    # The checks above are only as good as what they read: known imports and files must be in it.
    minter_tests = TESTS / "integration" / "minter" / "test_minter.py"
    assert any(item.module == "tests.support.minting" for item in _imports(minter_tests))
    assert _is_test_module("tests.integration.minter.test_minter")
    assert _is_test_module("tests.integration.conftest")
    assert not _is_test_module("tests.support.stack")
    assert {"api", "chain", "personalization"} <= PRODUCT_PACKAGES
    assert TESTS / "unit" / "architecture" / "test_layout.py" in set(_test_files())
