"""The assistant's parser: paraphrases and typos of every command, with their arguments."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from mlwarden.assistant.parser import INTENTS, ParseContext, closest, edit_distance, parse

TITANIC = [
    "PassengerId", "Survived", "Pclass", "Name", "Sex", "Age",
    "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked",
]  # fmt: skip
CONTEXT = ParseContext(
    datasets=["titanic", "sales"],
    models=["titanic-survived", "titanic-fare", "churn"],
    columns={"titanic": TITANIC, "sales": ["region", "amount", "churned"]},
    last_dataset="titanic",
    last_model="titanic-survived",
)

# (text, intent, the arguments that must be there with these values)
PHRASINGS: list[tuple[str, str, dict[str, Any]]] = [
    # upload
    ("upload titanic.csv as titanic", "upload", {"path": "titanic.csv", "name": "titanic"}),
    ("load the titanic example", "upload", {"example": "titanic", "name": "titanic"}),
    ("import data/sales_2024.csv", "upload", {"path": "data/sales_2024.csv", "name": "sales_2024"}),
    (
        "uplod ./raw/Customers.parquet named customers",
        "upload",
        {"path": "./raw/Customers.parquet", "name": "customers"},
    ),
    ("please add the bike_sharing sample", "upload", {"example": "bike_sharing"}),
    (
        'upload "/tmp/my data/file one.csv" as mine',
        "upload",
        {"path": "/tmp/my data/file one.csv", "name": "mine"},
    ),
    ("ingest electricity", "upload", {"example": "electricity"}),
    # clean
    ("clean titanic", "clean", {"dataset": "titanic"}),
    ("clean it", "clean", {"dataset": "titanic"}),
    ("cleen titanic", "clean", {"dataset": "titanic"}),
    ("tidy up the sales data", "clean", {"dataset": "sales"}),
    ("preprocess titanic version 1", "clean", {"dataset": "titanic", "version": 1}),
    ("clean up titanic keeping Survived", "clean", {"dataset": "titanic", "keep": "Survived"}),
    ("could you clean titanik please", "clean", {"dataset": "titanic"}),
    (
        "Clean the dataset and drop non-numeric columns",
        "clean",
        {"dataset": "titanic", "drop_non_numeric": True},
    ),
    # train
    (
        "train a classifier on titanic to predict Survived",
        "train",
        {
            "dataset": "titanic",
            "target": "Survived",
            "task": "classification",
            "model": "titanic-survived",
        },
    ),
    (
        "train a regression model on titanic predicting Fare",
        "train",
        {"dataset": "titanic", "target": "Fare", "task": "regression", "model": "titanic-fare"},
    ),
    (
        "trian a clasifier on titanc to predict survivd",
        "train",
        {"dataset": "titanic", "target": "Survived", "task": "classification"},
    ),
    (
        "fit a random forest on titanic, target Fare",
        "train",
        {"dataset": "titanic", "target": "Fare", "algorithm": "random_forest"},
    ),
    (
        "build a logistic regression model for Survived on titanic",
        "train",
        {
            "dataset": "titanic",
            "target": "Survived",
            "algorithm": "logistic_regression",
            "task": "classification",
        },
    ),
    (
        "train gradient boosting on titanic predicting Fare as fare-model",
        "train",
        {"algorithm": "gradient_boosting", "target": "Fare", "model": "fare-model"},
    ),
    (
        "train lightgbm on sales to predict churned",
        "train",
        {"dataset": "sales", "target": "churned", "algorithm": "lightgbm"},
    ),
    ("train a model on it predicting age", "train", {"dataset": "titanic", "target": "Age"}),
    (
        "train a classifier on titanic.csv predicting Survived",
        "train",
        {"dataset": "titanic.csv", "target": "Survived", "model": "titanic-survived"},
    ),
    (
        "learn to predict Fare from titanic with linear regression",
        "train",
        {
            "dataset": "titanic",
            "target": "Fare",
            "algorithm": "linear_regression",
            "task": "regression",
        },
    ),
    (
        "train on titanic version 2 predicting Survived",
        "train",
        {"dataset": "titanic", "dataset_version": 2, "target": "Survived"},
    ),
    (
        "traning a regressor for Fare on titanic",
        "train",
        {"dataset": "titanic", "target": "Fare", "task": "regression"},
    ),
    # deploy
    (
        "deploy titanic-survived to staging",
        "deploy",
        {"model": "titanic-survived", "environment": "staging"},
    ),
    ("deploi it to prod", "deploy", {"model": "titanic-survived", "environment": "production"}),
    (
        "ship version 2 of titanic-survived to staging",
        "deploy",
        {"model": "titanic-survived", "version": 2, "environment": "staging"},
    ),
    ("deploy churn", "deploy", {"model": "churn", "environment": "staging"}),
    (
        "release titanic-fare v3 to production",
        "deploy",
        {"model": "titanic-fare", "version": 3, "environment": "production"},
    ),
    (
        "deplyo titanic-survivd to stagng",
        "deploy",
        {"model": "titanic-survived", "environment": "staging"},
    ),
    # promote
    (
        "promote it to production",
        "promote",
        {"model": "titanic-survived", "environment": "production"},
    ),
    ("promte titanic-fare", "promote", {"model": "titanic-fare"}),
    ("move churn to production", "promote", {"model": "churn"}),
    (
        "graduate titanic-survived version 4 to prod",
        "promote",
        {"model": "titanic-survived", "version": 4},
    ),
    # rollback
    (
        "roll back titanic-survived",
        "rollback",
        {"model": "titanic-survived", "environment": "production"},
    ),
    (
        "rollbak titanic-fare in staging",
        "rollback",
        {"model": "titanic-fare", "environment": "staging"},
    ),
    ("revert churn to version 1", "rollback", {"model": "churn", "version": 1}),
    ("roll it back", "rollback", {"model": "titanic-survived"}),
    ("go back to the previous version of churn", "rollback", {"model": "churn"}),
    # monitor
    (
        "monitor titanic-survived for drift",
        "monitor",
        {"model": "titanic-survived", "enabled": True},
    ),
    ("keep an eye on titanic-fare", "monitor", {"model": "titanic-fare", "enabled": True}),
    ("watch it", "monitor", {"model": "titanic-survived", "enabled": True}),
    ("moniter churn for drift", "monitor", {"model": "churn", "enabled": True}),
    (
        "stop monitoring titanic-survived",
        "monitor",
        {"model": "titanic-survived", "enabled": False},
    ),
    ("turn on monitoring for churn", "monitor", {"model": "churn", "enabled": True}),
    # a user's own sentence: "the model" is the session's model, as "it" is
    (
        "Monitor the model performance for drift",
        "monitor",
        {"model": "titanic-survived", "enabled": True},
    ),
    # download
    (
        "download the cleaned titanic",
        "download",
        {"dataset": "titanic", "cleaned": True, "format": "csv"},
    ),
    (
        "export titanic version 2 as parquet to out/titanic.parquet",
        "download",
        {"dataset": "titanic", "version": 2, "format": "parquet", "output": "out/titanic.parquet"},
    ),
    ("downlaod titanic as csv", "download", {"dataset": "titanic", "format": "csv"}),
    (
        "save it to result.parquet",
        "download",
        {"dataset": "titanic", "format": "parquet", "output": "result.parquet"},
    ),
    ("give me the cleaned sales data", "download", {"dataset": "sales", "cleaned": True}),
    ("Download the processed dataset", "download", {"dataset": "titanic", "cleaned": True}),
    # list / compare / help
    ("show experiments", "list", {"what": "experiments"}),
    ("list datasets", "list", {"what": "datasets"}),
    ("what models are there", "list", {"what": "models"}),
    ("show the runs of churn", "list", {"what": "experiments", "model": "churn"}),
    ("experiments", "list", {"what": "experiments"}),
    ("lsit models", "list", {"what": "models"}),
    ("compare runs 3 and 4", "compare", {"runs": [3, 4]}),
    ("compare experiment 3 with 5", "compare", {"runs": [3, 5]}),
    ("comapre run 7 vs 2", "compare", {"runs": [7, 2]}),
    ("diff runs #1 and #2", "compare", {"runs": [1, 2]}),
    ("help", "help", {}),
    ("what can you do", "help", {}),
    ("", "help", {}),
    # on-call questions, answered from the store (behaviour: test_user_sentences.py)
    ("why is demo failing?", "oncall", {"question": "failing", "model": "demo"}),
    ("show open incidents", "oncall", {"question": "incidents", "state": "open"}),
    ("is churn drifting?", "oncall", {"question": "drifting", "model": "churn"}),
    ("is titanic drifting?", "oncall", {"question": "drifting", "model": "titanic"}),
    ("show the drift report", "oncall", {"question": "drift_report", "model": "titanic-survived"}),
    ("what did the agent do today?", "oncall", {"question": "activity", "since": "today"}),
    # not understood
    ("make me a sandwich", "unknown", {}),
    ("delete titanic", "unknown", {"not_understood": ["delete", "titanic"]}),
]


def test_there_are_at_least_fifty_phrasings() -> None:
    assert len(PHRASINGS) >= 50
    assert {intent for _, intent, _ in PHRASINGS} == set(INTENTS)


@pytest.mark.parametrize(
    ("text", "intent", "expected"), PHRASINGS, ids=[p[0] or "<empty>" for p in PHRASINGS]
)
def test_phrasing(text: str, intent: str, expected: dict[str, Any]) -> None:
    parsed = parse(text, CONTEXT)
    assert parsed.intent == intent, (parsed.intent, parsed.notes)
    for key, value in expected.items():
        assert parsed.arguments.get(key) == value, (key, parsed.arguments, parsed.notes)
    if intent not in {"unknown"}:
        assert parsed.missing == []
        assert parsed.command.startswith("mlwarden ")
        assert "<" not in parsed.command  # nothing missing, so no placeholder


@pytest.mark.parametrize(("text", "intent", "expected"), PHRASINGS[:40])
def test_dry_run_json_has_exactly_the_contract_keys(
    text: str, intent: str, expected: dict[str, Any]
) -> None:
    out = parse(text, CONTEXT).to_dict()
    assert list(out) == ["intent", "arguments", "command", "missing"]
    assert out["intent"] in INTENTS


def test_missing_slots_are_listed_and_marked_in_the_command() -> None:
    parsed = parse("train a classifier on sales", CONTEXT)
    assert parsed.intent == "train"
    assert parsed.missing == ["target"]
    assert (
        parsed.command == "mlwarden train --dataset sales --target <target> --task classification"
    )
    assert parse("deploy to staging", ParseContext()).missing == ["model"]
    assert parse("compare run 3", CONTEXT).missing == ["runs"]
    assert parse("upload", CONTEXT).missing == ["path"]


def test_it_without_a_session_is_missing_not_guessed() -> None:
    parsed = parse("deploy it to staging", ParseContext())
    assert parsed.arguments["model"] is None
    assert parsed.missing == ["model"]


def test_typos_are_reported_in_the_notes() -> None:
    parsed = parse("trian a clasifier on titanc to predict survivd", CONTEXT)
    assert "read 'trian' as 'train'" in parsed.notes
    assert "read 'titanc' as 'titanic'" in parsed.notes
    assert "read 'survivd' as column 'Survived'" in parsed.notes


def test_unknown_words_inside_a_known_command_are_reported() -> None:
    parsed = parse("deploy titanic-survived to staging quickly zorblax", CONTEXT)
    assert parsed.intent == "deploy"
    assert parsed.ignored == ["quickly", "zorblax"]


def test_delete_is_never_an_action() -> None:
    parsed = parse("delete the titanic dataset", CONTEXT)
    assert parsed.intent == "unknown"
    assert any("never deletes" in note for note in parsed.notes)
    assert parsed.command == ""


def test_commands_are_shell_safe() -> None:
    parsed = parse("upload '/tmp/a b/$(rm -rf x).csv' as x", CONTEXT)
    assert shlex.split(parsed.command)[3] == "/tmp/a b/$(rm -rf x).csv"


def test_short_words_are_not_guessed_as_verbs() -> None:
    # "stage" is two edits from "save"; short words get no typo budget
    assert parse("stage", CONTEXT).intent == "unknown"
    assert closest("fit", ["fix"]) is None


def test_edit_distance_counts_transpositions_once() -> None:
    assert edit_distance("downlaod", "download") == 1
    assert edit_distance("abc", "abc") == 0
    assert edit_distance("kitten", "sitting") == 3


@pytest.mark.parametrize(
    "text", [p[0] for p in PHRASINGS if p[1] != "unknown"], ids=lambda t: t or "<empty>"
)
def test_every_printed_command_is_a_real_cli_command(text: str) -> None:
    import click
    import typer.main

    from mlwarden.cli.main import app

    words = shlex.split(parse(text, CONTEXT).command)
    assert words[0] == "mlwarden"
    command: click.Command = typer.main.get_command(app)
    args = words[1:]
    while isinstance(command, click.Group):
        name, args = args[0], args[1:]
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"no command {name!r} in {words}"
        command = found
    command.make_context(command.name or "", list(args))  # raises on unknown options
