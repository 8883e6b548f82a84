"""The package keeps its shape: dependencies point one way, no import cycle, features never
import each other, every feature is in the index, and one door per concern.

The layers, from the top: `app`/`index` → `commands` → `features` → `core` → `rules`, `db`,
`matrix` → `config` → the foundation (`errors`, `language`, `logs`, `metrics`, `tasks`).
`dev` (the local Synapse, the demo, the catalogues) stands beside the runtime, which never
imports it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "communities_appservice"
NAME = "communities_appservice"

# Which part may import which (a part always imports itself).
RUNTIME = {"index", "commands", "features", "core", "rules", "db", "matrix", "config"}
ALLOWED = {
    "main": {"app", "config", "foundation"},
    "app": RUNTIME | {"foundation"},
    "index": {"commands", "features"},
    "commands": {"features", "core", "rules", "db", "matrix", "config", "foundation"},
    "features": {"core", "rules", "db", "matrix", "config", "foundation"},
    "core": {"rules", "db", "matrix", "config", "foundation"},
    "matrix": {"rules", "db", "config", "foundation"},
    "db": {"rules", "foundation"},
    "config": {"rules", "foundation"},
    "rules": {"foundation"},
    "foundation": {"foundation"},
    "dev": RUNTIME | {"main", "app", "foundation"},
}
FOUNDATION = {"errors", "language", "logs", "metrics", "tasks"}
# Modules allowed past the ~400-line bar, because each is one idea.
LONG = {"dev/localhs.py", "dev/demo.py"}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join([NAME, *parts]), path


MODULES = dict(_modules())


def _part(module: str) -> str:
    rest = module.removeprefix(NAME).lstrip(".").split(".")
    top = rest[0] if rest and rest[0] else "package"
    if top in FOUNDATION or top == "package":
        return "foundation"
    if top == "__main__":
        return "main"
    return top


def _imports(module: str, path: Path) -> set[str]:
    """The package's modules that `module` imports, at run time (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom):
                base = module.split(".") if is_package else module.split(".")[:-1]
                if node.level:
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    found.add(candidate if candidate in MODULES else target)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                child = getattr(node, field, None)
                if isinstance(child, list):
                    visit([c for c in child if isinstance(c, ast.stmt | ast.ExceptHandler)])  # type: ignore[misc]

    visit(tree.body)
    return {m for m in found if m in MODULES and m != module}


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_dependencies_point_one_way() -> None:
    wrong = [
        f"{m} → {t}"
        for m, targets in GRAPH.items()
        for t in targets
        if _part(t) != _part(m) and _part(t) not in ALLOWED[_part(m)]
    ]
    assert wrong == []


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                walk(target, [*stack, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_features_never_import_each_other() -> None:
    features = {m for m in MODULES if _part(m) == "features" and m.count(".") >= 2}
    crossing = [f"{m} → {t}" for m in features for t in GRAPH[m] if t in features]
    assert crossing == []


def test_the_index_names_every_feature_and_command_module() -> None:
    framework = {"framework", "parse", "args"}
    wanted = {
        m
        for m in MODULES
        if _part(m) in ("features", "commands")
        and m.count(".") == 2
        and m.rsplit(".", 1)[1] not in framework
    }
    reached: set[str] = set()
    todo = [f"{NAME}.index"]
    while todo:
        module = todo.pop()
        for target in GRAPH[module]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert sorted(wanted - reached) == []


@pytest.mark.parametrize(
    ("needle", "door"),
    [
        ("html.escape", "core/notices.py"),
        ('"m.notice"', "core/notices.py"),
        ("asyncio.create_task", "tasks.py"),
        ("secrets.token_hex(4)", "errors.py"),
    ],
)
def test_one_door(needle: str, door: str) -> None:
    elsewhere = [
        str(path.relative_to(PACKAGE))
        for path in MODULES.values()
        if needle in path.read_text()
        and str(path.relative_to(PACKAGE)) != door
        and not str(path.relative_to(PACKAGE)).startswith("dev/")
    ]
    assert elsewhere == []


def test_modules_stay_small() -> None:
    long = [
        f"{path.relative_to(PACKAGE)}: {n}"
        for path in MODULES.values()
        if (n := len(path.read_text().splitlines())) > 430
        and str(path.relative_to(PACKAGE)) not in LONG
    ]
    assert long == []
