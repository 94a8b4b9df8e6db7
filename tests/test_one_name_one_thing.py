"""One name, one thing (issue 14): there were two ``Diagnosis`` classes, two ``Journal`` classes,
three things called assistant and four converters from stored records to the monitor's table.
These tests read the source, so a second one cannot come back unnoticed."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import mlwarden

SOURCE = Path(mlwarden.__file__).parent


def _modules() -> dict[str, ast.Module]:
    return {
        ".".join(path.relative_to(SOURCE.parent).with_suffix("").parts): ast.parse(
            path.read_text(encoding="utf-8")
        )
        for path in sorted(SOURCE.rglob("*.py"))
    }


def test_no_two_public_classes_share_a_name() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for module, tree in _modules().items():
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(module)
    shared = {name: modules for name, modules in where.items() if len(modules) > 1}
    assert shared == {}
    # the two that were doubled: the diagnosis vocabulary and the action journal
    assert where["Diagnosis"] == ["mlwarden.agent.policy"]
    assert sorted(n for n in where if n.endswith("Journal")) == ["ActionJournal", "SpillJournal"]


def test_assistant_names_the_command_assistant_only() -> None:
    """``mlwarden.assistant`` is the command assistant; a module elsewhere called assistant is
    its route, page, command or table, and imports or serves it (diagnosis from free text is
    ``diagnose.free_text``)."""
    named = sorted(
        m
        for m in _modules()
        if "assistant" in m.split(".")[-1]
        and not m.startswith(("mlwarden.assistant.", "mlwarden.store.migrations."))
    )
    assert named == [
        "mlwarden.api.routes_assistant",
        "mlwarden.cli.assistant",
        "mlwarden.store.assistant",
        "mlwarden.store.assistant_tables",
        "mlwarden.ui.assistant_history",  # the assistant page's conversation, per session
        "mlwarden.ui.pages.assistant",
    ]


def _reads_features(node: ast.AST) -> bool:
    """Whether ``node`` reads a stored record's ``features`` (``r["features"]`` or
    ``r.get("features")``)."""
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Subscript)
            and isinstance(sub.slice, ast.Constant)
            and sub.slice.value == "features"
        ):
            return True
        if (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Attribute)
            and sub.func.attr == "get"
            and sub.args
            and isinstance(sub.args[0], ast.Constant)
            and sub.args[0].value == "features"
        ):
            return True
    return False


def test_stored_records_become_a_table_in_one_place() -> None:
    """A DataFrame built from stored records' features is ``monitor.window.records_frame``;
    the one other is the retrain's training set (features and label, nothing of the
    monitor's columns)."""
    builders = set()
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"DataFrame", "from_records"}
                and any(_reads_features(arg) for arg in node.args)
            ):
                builders.add(module)
    # monitor.window builds its table from columns (``columns_frame``), which this walk does not
    # see as reading a record's features: no module but these two may be found here
    assert builders <= {"mlwarden.monitor.window", "mlwarden.agent.remedies.retrain"}
    assert "mlwarden.agent.remedies.retrain" in builders  # the walk still finds a builder
