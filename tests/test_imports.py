"""The project's Python modules import each other without a circle.

Every ``import`` statement counts, those inside functions and under
``TYPE_CHECKING`` too: a circle hidden in a function is still a circle a
reader has to untangle.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

from tools.harness import ROOT

# Each folder holding packages of this repository's own code, and the prefix
# its modules are imported by: the library's source is infra/dataplatform,
# imported as ``dataplatform``.
PACKAGES = {
    "infra": "",
    "jobs": "jobs",
    "tools": "tools",
    "benchmarks": "benchmarks",
    "tests": "tests",
    "cluster": "cluster",
    "scripts": "scripts",
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, prefix in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            if ".venv" in path.parts or "node_modules" in path.parts:
                continue
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts] if prefix else parts)] = path
    for program in ("__main__", "stack_config"):
        found[program] = ROOT / f"{program}.py"
    return found


def _imported(tree: ast.AST, modules: dict[str, Path]) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import mod`` imports the module ``pkg.mod``.
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name in modules:
                yield name


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = {other for other in _imported(tree, modules) if other != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back() -> None:
    graph = import_graph()
    assert len(graph) > 50, "the walk found too few modules to mean anything"
    assert circles(graph) == []


def test_the_check_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_point_one_way() -> None:
    """The config vocabulary knows no service, the settings assembly no
    catalogue, no library module reads the stack's config (only the
    repository's adapter, ``stack_config``, does) and the library imports
    nothing of the repository's tools."""
    graph = import_graph()
    assert not {m for m in graph["dataplatform.config"] if m.startswith("dataplatform.services")}
    assert "dataplatform.services.catalog" not in graph["dataplatform.settings"]
    readers = {
        name
        for name, path in _modules().items()
        if name.split(".")[0] in ("stack_config", "dataplatform") and "pulumi.Config(" in path.read_text()
    }
    assert readers == {"stack_config"}
    library = {name: deps for name, deps in graph.items() if name.startswith("dataplatform")}
    assert len(library) > 25
    roots = ("dataplatform", "jobs")
    outside = {d for deps in library.values() for d in deps if d.split(".")[0] not in roots}
    assert outside == set()


def test_every_tool_imports() -> None:
    """The live runs' modules are not imported by the unit tests otherwise;
    a name moved in the library must fail here, not at the end of a CI run."""
    failed = {}
    for name in sorted(_modules()):
        if not name.startswith(("tools.", "benchmarks.engine", "benchmarks.compose")):
            continue
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            # A third-party package of another environment (the jobs' numpy)
            # is not this test's business; a project module is.
            if (error.name or "").split(".")[0] in (
                "dataplatform",
                "jobs",
                "tools",
                "benchmarks",
                "stack_config",
            ):
                failed[name] = str(error)
        except ImportError as error:
            failed[name] = str(error)
    assert failed == {}
