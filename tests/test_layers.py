"""Imports point down only (docs/architecture.md): a package never imports one above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOOR = {"online_models": 1, "stream": 2, "web": 3, "producers": 3, "evaluation": 3,
         "simulation": 4, "distributed": 4, "liverec": 5}
#: Never below the composition root: the pipeline core must run without them.
SERVICE_CLIENTS = {"kafka", "aiokafka", "faust", "redis"}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FLOOR))
def test_a_package_imports_only_packages_below_it(package: str) -> None:
    for path in (REPO / package).rglob("*.py"):
        for name in imported_packages(path):
            if name in FLOOR and name != package:
                assert FLOOR[name] < FLOOR[package], f"{path}: {package} imports {name}"


#: The pipeline's logic: the embedded and the distributed runtime both run exactly this code.
PIPELINE_CORE = ["online_models/covisitation.py", "online_models/covis_definition.py",
                 "online_models/covisitation_batch.py",
                 "online_models/sessions.py", "online_models/popularity.py",
                 "online_models/recommend.py", "online_models/rerank.py",
                 "online_models/successors.py", "online_models/metrics.py", "stream/events.py",
                 "stream/pipeline.py"]


@pytest.mark.parametrize("module", PIPELINE_CORE)
def test_the_pipeline_core_imports_no_service_client(module: str) -> None:
    assert not imported_packages(REPO / module) & SERVICE_CLIENTS


def module_imports(path: Path, modules: set[str]) -> set[str]:
    """The project's modules ``path`` imports, at the top or inside a function (a lazy import
    hides a circle from Python, not from a reader). ``from package import module`` counts as
    importing that module, not the package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            inner = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            names.update(inner if len(inner) == len(node.names) else {node.module, *inner})
    return names & modules


def module_graph() -> dict[str, set[str]]:
    paths = {".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): path
             for package in FLOOR for path in (REPO / package).rglob("*.py")}
    return {name: module_imports(path, set(paths)) - {name} for name, path in paths.items()}


def test_no_module_imports_itself_through_others() -> None:
    graph = module_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                circle = path[path.index(other):] + [other]
                pytest.fail("import circle: " + " → ".join(circle))
            if other not in state:
                visit(other, path + [other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
