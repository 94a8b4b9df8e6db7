"""The import rules of docs/architecture.md, checked on the source.

Every module under ``src/mlwarden`` is parsed with ``ast``; every import counts, at the top of
a module, inside a function or under ``TYPE_CHECKING``, absolute or relative (rules 1-4), and
every call that writes a deployment revision (rule 5):

1. A package imports only packages of lower layers (``LAYERS``, top first, is the table of
   docs/architecture.md); packages that share a layer import neither each other.
2. No two packages import each other.
3. No module imports itself through other modules (an import cycle).
4. Only ``mlwarden.store`` imports SQLAlchemy, Alembic and the table definitions.
5. Only ``mlwarden.store`` and ``mlwarden.agent.operations`` write deployment revisions.

The table of docs/architecture.md must show the same rows.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"

# The layers, top first. ``mlwarden`` is the package's own ``__init__`` (its version, and the
# client from the SDK for ``from mlwarden import Client``).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("server",),
    ("ui",),
    ("api",),
    ("scenarios",),
    ("assistant",),
    ("agent",),
    ("diagnose",),
    ("monitor",),
    ("detect",),
    ("stats",),
    ("serving",),
    ("capture",),
    ("registry",),
    ("store",),
    ("mlwarden", "paths"),
    ("sdk", "domain", "errors", "settings", "datasets", "clock", "lazy", "heap"),
)

LAYER_OF: dict[str, int] = {
    package: len(LAYERS) - rank for rank, row in enumerate(LAYERS) for package in row
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    line: int
    target: str  # the imported module, dotted


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((SOURCE / "mlwarden").rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every mlwarden module ``name`` imports, wherever the import statement stands."""
    found: list[Import] = []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                Import(name, node.lineno, alias.name)
                for alias in node.names
                if alias.name.split(".")[0] == "mlwarden"
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "mlwarden":
                continue
            for alias in node.names:
                # ``from mlwarden.agent import executors`` imports the module, not the package
                submodule = f"{target}.{alias.name}"
                imported = submodule if submodule in modules else target
                found.append(Import(name, node.lineno, imported))
    return found


def all_imports() -> list[Import]:
    """Every import of every module, once per (module, line, imported module)."""
    modules = source_modules()
    found = {each for name, path in modules.items() for each in imports_of(name, path, modules)}
    return sorted(found, key=lambda each: (each.module, each.line, each.target))


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def describe(found: Import, rule: str) -> str:
    return f"{found.module}:{found.line} imports {found.target}: {rule}"


def test_every_package_has_a_layer() -> None:
    packages = {package_of(name) for name in source_modules()}
    assert packages - LAYER_OF.keys() == set(), "add these packages to LAYERS (and the doc's table)"
    assert LAYER_OF.keys() - packages == set(), "LAYERS names packages that do not exist"


def test_the_architecture_doc_shows_the_same_table() -> None:
    doc = (SOURCE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = doc.split("| layer | package | what it holds |")[1].split("\n\n")[0]
    rows = [line.split("|")[2] for line in table.strip().splitlines()[1:]]
    shown = tuple(
        tuple(name or "mlwarden" for name in re.findall(r"`mlwarden(?:\.(\w+))?`", row))
        for row in rows
    )
    assert shown == LAYERS, "docs/architecture.md's layer table differs from LAYERS"


def test_imports_flow_down_the_layers() -> None:
    violations = []
    for found in all_imports():
        source, target = package_of(found.module), package_of(found.target)
        if source == target:
            continue
        if LAYER_OF[target] > LAYER_OF[source]:
            violations.append(describe(found, f"{source} may not import {target}, a higher layer"))
        elif LAYER_OF[target] == LAYER_OF[source]:
            violations.append(describe(found, f"{source} and {target} share a layer"))
    assert violations == [], "imports against docs/architecture.md:\n" + "\n".join(violations)


def test_no_two_packages_import_each_other() -> None:
    evidence: dict[tuple[str, str], Import] = {}
    for found in all_imports():
        pair = (package_of(found.module), package_of(found.target))
        if pair[0] != pair[1]:
            evidence.setdefault(pair, found)
    mutual = [
        describe(
            evidence[(a, b)],
            f"{a} and {b} import each other; " + describe(evidence[(b, a)], "and back"),
        )
        for (a, b) in sorted(evidence)
        if a < b and (b, a) in evidence
    ]
    assert mutual == [], "packages importing each other:\n" + "\n".join(mutual)


def test_no_module_import_cycles() -> None:
    graph: dict[str, dict[str, Import]] = defaultdict(dict)
    for found in all_imports():
        if found.target != found.module:
            graph[found.module].setdefault(found.target, found)
    cycles = [
        "\n".join(describe(graph[a][b], "import cycle") for a, b in cycle)
        for cycle in _cycles(graph)
    ]
    assert cycles == [], "module import cycles:\n" + "\n\n".join(cycles)


def _cycles(graph: dict[str, dict[str, Import]]) -> list[list[tuple[str, str]]]:
    """One cycle (as its edges) per strongly connected component of more than one module."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is a few hundred modules
        order[node] = low[node] = len(order)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, {}):
            if successor not in order:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], order[successor])
        if low[node] == order[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return [_one_cycle(graph, component) for component in components]


def _one_cycle(graph: dict[str, dict[str, Import]], component: set[str]) -> list[tuple[str, str]]:
    start = min(component)
    path, seen, node = [start], {start}, start
    while True:  # inside a strongly connected component every walk returns to a visited module
        node = next(n for n in sorted(graph[node]) if n in component)
        if node in seen:
            loop = [*path[path.index(node) :], node]
            return list(pairwise(loop))
        path.append(node)
        seen.add(node)


def test_the_checker_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    module = tmp_path / "mlwarden" / "agent" / "loop.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "def f():\n    from mlwarden.api import deps\n\nfrom . import journal\nfrom ..ui import x\n"
    )
    modules = {"mlwarden.api.deps": module, "mlwarden.agent.journal": module}
    found = imports_of("mlwarden.agent.loop", module, modules)
    assert sorted((each.line, each.target) for each in found) == [
        (2, "mlwarden.api.deps"),
        (4, "mlwarden.agent.journal"),
        (5, "mlwarden.ui"),
    ]


# What only ``mlwarden.store`` may import: SQLAlchemy (and Alembic) and the table definitions.
# Every other layer reads and writes through the store's functions.
STORE_ONLY = (
    "sqlalchemy",
    "alembic",
    "mlwarden.store.tables",
    "mlwarden.store.agent_tables",
    "mlwarden.store.assistant_tables",
    "mlwarden.store.database",
)


def store_only_imports(name: str, path: Path) -> list[Import]:
    """The imports of ``name`` that only the store may make, wherever they stand."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue  # relative imports stay inside a package; the store's are its own
        banned = [
            target
            for target in targets
            if any(target == each or target.startswith(each + ".") for each in STORE_ONLY)
        ]
        found += [Import(name, node.lineno, banned[0])] if banned else []  # one per statement
    return found


def test_only_the_store_touches_tables_and_sqlalchemy() -> None:
    outside = {
        name: store_only_imports(name, path)
        for name, path in source_modules().items()
        if not (name == "mlwarden.store" or name.startswith("mlwarden.store."))
    }
    found = [
        describe(each, "only mlwarden.store may import it")
        for name in sorted(outside)
        for each in outside[name]
    ]
    assert found == [], "queries outside the store:\n" + "\n".join(found)


def test_the_store_rule_sees_sqlalchemy_and_table_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import sqlalchemy.exc\n"
        "def f():\n    from sqlalchemy import select\n"
        "from mlwarden.store import tables as t, Store\n"
        "from mlwarden.store.writer import RecordWriter\n"
    )
    found = store_only_imports("mlwarden.ui.m", module)
    assert sorted((each.line, each.target) for each in found) == [
        (1, "sqlalchemy.exc"),
        (3, "sqlalchemy"),
        (4, "mlwarden.store.tables"),
    ]


# The store's writes of a deployment revision, and the one package outside the store that may
# call them: every change to a model goes through the operations service (docs/architecture.md,
# "One path for changes to a model").
DEPLOYMENT_WRITES = frozenset({"set_deployment", "undo_deployment"})
DEPLOYMENT_WRITERS = ("mlwarden.store", "mlwarden.agent.operations")


def deployment_writes(path: Path) -> list[tuple[int, str]]:
    """Every call ``<anything>.set_deployment(...)`` or ``.undo_deployment(...)`` in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return sorted(
        (node.lineno, node.func.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in DEPLOYMENT_WRITES
    )


def test_only_the_store_and_the_operations_service_write_deployments() -> None:
    found = [
        f"{name}:{line} calls {call}: change deployments through agent.operations.Operations"
        for name, path in source_modules().items()
        if not any(name == each or name.startswith(each + ".") for each in DEPLOYMENT_WRITERS)
        for line, call in deployment_writes(path)
    ]
    assert found == [], "deployments written outside the operations service:\n" + "\n".join(found)


def test_the_deployment_rule_sees_every_call(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f(store, registry):\n"
        "    store.set_deployment('m', state, actor='a')\n"
        "    Registry(store).store.undo_deployment('m', 3, actor='a')\n"
        "    store.get_deployment('m')\n"
    )
    assert deployment_writes(module) == [(2, "set_deployment"), (3, "undo_deployment")]
