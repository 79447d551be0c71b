"""The hexagonal rule: core packages never import AWS or MongoDB clients; adapters are chosen in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "taskrunner" / "taskrunner"
CORE = ("pack", "plan", "asl", "engine", "evidence", "modules", "api")
ADAPTER_LIBRARIES = ("boto3", "botocore", "pymongo", "mongomock", "mongomock_ng", "moto")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # submodules imported by name
    return names


@pytest.mark.parametrize("package", CORE)
def test_core_package_imports_no_adapter_library(package: str) -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / package).rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in ADAPTER_LIBRARIES
    }
    assert not offenders


def test_engine_never_imports_composition() -> None:
    """Use cases take their Services as a parameter; only entry points (handlers, CLI, API routes) build them."""
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / "engine").rglob("*.py")
        for name in imported_modules(path)
        if name == "taskrunner.composition" or name.startswith("taskrunner.composition.")
    }
    assert not offenders


def test_no_test_double_in_production_code() -> None:
    offenders = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.parts[-2] != "local"
        and {"mongomock", "mongomock_ng"} & {n.split(".")[0] for n in imported_modules(path)}
    }
    assert not offenders


def test_functions_are_thin_adapters() -> None:
    functions = Path(__file__).resolve().parents[2] / "functions"
    for app in functions.glob("*/app.py"):
        lines = [line for line in app.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert len(lines) <= 40, app
        assert all(name.split(".")[0] != "boto3" for name in imported_modules(app)), app


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (module -> modules it imports), or [] when it has none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        path.append(module)
        for imported in sorted(graph[module]):
            cycle = visit(imported)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return []

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return []


def test_import_cycle_is_found() -> None:
    assert _import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _import_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_api_has_no_import_cycle() -> None:
    """Every import counts, those inside functions too: a module of taskrunner.api never reaches itself."""
    paths = [*(PACKAGE / "api").glob("*.py"), *(PACKAGE / "api" / "routes").glob("*.py")]
    modules = {_module_name(path): path for path in paths}
    graph = {name: imported_modules(path) & modules.keys() for name, path in modules.items()}
    assert _import_cycle(graph) == []
