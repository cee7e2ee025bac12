"""The layers hold: no Dagster below defs/ (the engine, domain, providers and storage are plain
code), the packages depend downwards only, and no two modules import each other in a circle
(imports inside functions and under TYPE_CHECKING count too). Read from the source with ast,
so a new import anywhere is caught without running it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "storygen_dagster"
PLAIN = ("engine", "domain", "providers", "storage", "books")
# Who may import whom, by top-level part of the package (a module at the top is its own part).
LAYERS = {
    "domain": set(),
    "settings": set(),
    "logs": set(),
    "storage": {"domain", "settings"},
    "providers": {"domain", "settings", "storage"},
    "books": {"domain"},
    "engine": {"domain", "settings", "storage", "providers", "books"},
    "recovery": {"settings", "storage"},
    "history": {"storage"},
    "instance": {"recovery", "settings", "storage"},
    # The Dagster layer: never the callers above it (pipeline, the CLI, console, review app).
    "defs": {
        "books",
        "domain",
        "engine",
        "instance",
        "providers",
        "recovery",
        "settings",
        "storage",
    },
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from pkg import mod` depends on pkg.mod (Python runs pkg/__init__ first either
            # way, which is not a circle between modules); `from mod import name` on mod.
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            found |= subs or {node.module}
    return found


def _graph() -> dict[str, set[str]]:
    return {
        name: {i for i in _imports(path) if i in MODULES and i != name}
        for name, path in MODULES.items()
    }


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else module


@pytest.mark.parametrize("package", PLAIN)
def test_no_dagster_below_the_dagster_layer(package):
    offenders = {
        name: sorted(i for i in _imports(path) if i.split(".")[0].startswith("dagster"))
        for name, path in MODULES.items()
        if name.startswith(f"storygen_dagster.{package}")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_packages_depend_downwards_only():
    wrong = []
    for name, deps in _graph().items():
        allowed = LAYERS.get(_part(name))
        if allowed is None:
            continue
        wrong += [f"{name} -> {d}" for d in deps if _part(d) not in allowed | {_part(name)}]
    assert wrong == []


def test_no_import_cycles():
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_scanner_sees_imports_in_functions_and_from_packages():
    """What the checks above rest on: a dagster import is seen, an import inside a function
    is seen, and `from pkg import mod` is read as a dependency on the module."""
    graph = _graph()
    assert "dagster" in _imports(ROOT / "defs" / "story" / "assets.py")
    assert "storygen_dagster.engine.runner" in graph["storygen_dagster.engine"]
    assert "storygen_dagster.engine.book" in graph["storygen_dagster.engine.runner"]
    # cli_lineage imports the history module inside a function body.
    assert "storygen_dagster.history" in graph["storygen_dagster.cli_lineage"]
