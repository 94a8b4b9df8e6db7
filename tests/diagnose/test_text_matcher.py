"""Issue 18: free text as on-call engineers write it.

The on-call sets (``oncall_train.yaml``, ``oncall_heldout.yaml``: 255 hand-written texts over
every playbook, split before any tuning) hold the matcher to its bar; the rest pins each kind
of miss the issue names: effects instead of symptom names, quoted values, typos, context
words, and a confidence that does not depend on ``--top``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mlwarden.cli.main import app
from mlwarden.diagnose.concepts import load_ontology, parse_ontology
from mlwarden.diagnose.evaluate import load_set, reliability, score
from mlwarden.diagnose.free_text import diagnose_text
from mlwarden.diagnose.loader import load_playbooks
from mlwarden.diagnose.text import Speller, analyse
from mlwarden.server import create_app
from mlwarden.settings import Settings

HERE = Path(__file__).parent
TRAIN = load_set(HERE / "oncall_train.yaml")
HELDOUT = load_set(HERE / "oncall_heldout.yaml")
runner = CliRunner()


def _first(text: str) -> str | None:
    answer = diagnose_text(text)
    return answer.matches[0].id if answer.matched else None


def test_the_sets_cover_every_playbook_in_every_register() -> None:
    everything = TRAIN["labelled"] + HELDOUT["labelled"]
    assert len(everything) >= 200
    assert len(TRAIN["unrelated"]) + len(HELDOUT["unrelated"]) >= 15
    assert {c["id"] for c in HELDOUT["labelled"]} == {pb.id for pb in load_playbooks()}
    assert {c["id"] for c in TRAIN["labelled"]} == {pb.id for pb in load_playbooks()}
    # a held-out third, no text in both halves
    total = len(everything) + len(TRAIN["unrelated"]) + len(HELDOUT["unrelated"])
    held = len(HELDOUT["labelled"]) + len(HELDOUT["unrelated"])
    # a third of the 255 texts of the split; 17 hard negatives and two batches of 26 texts
    # written after the matcher joined the training side later
    assert held == 85 and total == 255 + 17 + 2 * 26
    assert not {c["text"] for c in TRAIN["labelled"]} & {c["text"] for c in HELDOUT["labelled"]}
    texts = [c["text"] for c in everything]
    for register in ("Postmortem:", "TICKET:", "[PAGE]"):
        assert sum(t.startswith(register) for t in texts) >= 10 or register == "[PAGE]"
    assert sum("'" in t or '"' in t for t in texts) >= 30  # quoted names and values


def test_training_set_bar() -> None:
    result = score(TRAIN["labelled"], TRAIN["unrelated"])
    assert result["top1"] >= 0.95 and result["top3"] >= 0.98, result["misses"]
    # one known false match of 31: "the office printer shows error 500" (two server-error
    # phrases outweigh the missing ML context; see docs/benchmarks.md)
    assert result["unrelated_no_match"] >= result["unrelated"] - 1


def test_a_lone_symptom_word_about_something_else_is_no_match() -> None:
    assert not diagnose_text("my laptop is slow since the update").matched
    assert _first("the scoring endpoint is slow since the update") == "inference_latency_spike"
    assert not diagnose_text("calendar invites arrive late").matched
    assert _first("the daily partition arrives late") == "data_arrival_delay"


def test_heldout_set_stays_at_its_measured_level() -> None:
    # A floor under the figures in docs/benchmarks.md: a matcher change that loses held-out
    # accuracy fails here (the held-out texts are never used to write rules).
    result = score(HELDOUT["labelled"], HELDOUT["unrelated"])
    assert result["top1"] >= 0.93 and result["top3"] >= 0.96, (result["top1"], result["top3"])
    assert result["unrelated_no_match"] == result["unrelated"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the symptom told by its effect
        ("every answer is the same", "constant_predictions"),
        ("values stopped changing for every user", "stale_feature_store"),
        ('amounts arrive in "EUR" now, was "USD"', "unit_scaling_change"),
        ("inputs look identical but the hit rate keeps sinking week after week", "concept_drift"),
        # a quoted class or value is a value, not a symptom word
        ("the classifier says 'not_spam' to every single message", "constant_predictions"),
        ("recall on 'fraud' dropped to nothing since we swapped the artifact", "bad_model_deploy"),
        # a typo in the one symptom word, or another spelling
        ("memroy keeps growing on the model pods", "memory_leak"),
        ("materialisation job stuck, features old", "stale_feature_store"),
        ("the drift alert every weekend is pure seasonnalitty", "seasonality_false_alarm"),
        # negation: the symptom said to be absent does not count
        ("p99 is fine but the error rate is 20%", "inference_error_spike"),
    ],
)
def test_kinds_of_miss_the_issue_names(text: str, expected: str) -> None:
    assert _first(text) == expected


def test_typo_repair_keeps_the_first_letter_and_falls_back_to_trigrams() -> None:
    speller = Speller({"nulls": 2, "seasonality": 1, "latency": 1})
    assert speller.correct("pulls") == "pulls"  # an English word, not a typo of "nulls"
    assert speller.correct("latncy") == "latency"  # one edit: the deletion index
    assert speller.correct("seasonnalitty") == "seasonality"  # two edits: trigrams
    assert speller.correct("qqqqqqqqq") == "qqqqqqqqq"


def test_quoted_values_are_marked_and_skipped() -> None:
    tokens = analyse(
        "answers 'not_spam' and `tenure` but \"EUR\" counts",
        Speller({}),
        kept_values=load_ontology().kept_values(),
    )
    quoted = {t.surface: t.quoted for t in tokens}
    assert quoted["not"] and quoted["spam"] and quoted["tenure"]
    assert not quoted["eur"] and not quoted["answers"]
    # a quoted phrase with spaces is an error message: read as text
    assert not any(t.quoted for t in analyse("'Too Many Requests' from the API", Speller({})))
    # an apostrophe inside a word is no quote
    assert not any(
        t.quoted for t in analyse("friday's data isn't 'in' yet", Speller({})) if t.surface != "in"
    )


def test_context_words_steer_the_ranking() -> None:
    # the same symptom words, placed by context in different playbooks
    assert _first("predictions got worse after the canary went out") == "bad_model_deploy"
    assert _first("predictions got worse, feature store values are stale") == "stale_feature_store"
    plain = diagnose_text("lookups time out").matches
    with_store = diagnose_text("feature store lookups time out").matches
    assert plain[0].id == with_store[0].id == "dependency_throttling"
    assert with_store[0].score > plain[0].score
    # context alone is no symptom: no match
    assert not diagnose_text("we run a canary and a shadow of the model").matched


@pytest.mark.parametrize(
    "text",
    [
        "accuracy fell from 0.89 to 0.71 right after we rolled out v14",
        "lookups timing out and p99 is slow",
    ],
)
def test_confidence_does_not_depend_on_top(text: str) -> None:
    seen = set()
    for top in ("1", "2", "5"):
        result = runner.invoke(app, ["diagnose", text, "--json", "--top", top])
        assert result.exit_code == 0, result.output
        seen.add(json.loads(result.stdout)["matches"][0]["confidence"])
    assert len(seen) == 1, seen


def test_confidence_is_calibrated_on_the_training_texts() -> None:
    rows = reliability(score(TRAIN["labelled"])["answers"])
    confident = next(r for r in rows if r["bin"] == "0.9-1.0")
    assert confident["n"] >= 100 and confident["accuracy"] >= 0.9


def test_cli_explain_shows_the_words_behind_each_match() -> None:
    text = "fraud scores all look the same since the canary, every answer is 'not_fraud'"
    shown = runner.invoke(app, ["diagnose", text, "--explain", "--top", "2"])
    assert shown.exit_code == 0
    assert "why: all look same (symptom constant" in shown.stdout
    assert "canary (context deploy" in shown.stdout
    assert "not_fraud" not in shown.stdout.split("why:")[1].split("\n")[0]
    out = json.loads(runner.invoke(app, ["diagnose", text, "--json", "--explain"]).stdout)
    first = out["matches"][0]
    assert first["id"] == "constant_predictions"
    assert first["explain"][0] == {
        "words": "all look same",
        "via": "symptom constant",
        "weight": 4.0,
    }
    plain = json.loads(runner.invoke(app, ["diagnose", text, "--json"]).stdout)
    assert "explain" not in plain["matches"][0]


def test_api_answers_with_explain(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path}/m.db")
    with TestClient(create_app(settings)) as client:
        body = client.post(
            "/v1/diagnose", json={"text": "OOMKilled again, RSS keeps growing", "top": 1}
        ).json()
    match = body["matches"][0]
    assert match["id"] == "memory_leak"
    why = {(e["words"], e["via"]) for e in match["explain"]}
    assert {
        ("oomkilled", "symptom memory"),
        ("rss", "symptom memory"),
        ("oomkilled", "word"),
    } <= why
    assert all(e["weight"] > 0 for e in match["explain"])


def test_a_phrase_of_filler_words_is_refused() -> None:
    bad = {"x": {"kind": "symptom", "playbooks": {"memory_leak": 1}, "say": ["have label"]}}
    with pytest.raises(ValueError, match="'have label' is only filler words around 'label'"):
        parse_ontology(bad)
    with pytest.raises(ValueError, match="needs kind"):
        parse_ontology({"x": {"kind": "other", "playbooks": {"a": 1}, "say": ["y"]}})


def test_every_concept_points_at_known_playbooks() -> None:
    ids = {pb.id for pb in load_playbooks()}
    for concept in load_ontology().concepts.values():
        assert set(concept.playbooks) <= ids, concept.name


def test_sets_are_valid_yaml_with_known_ids() -> None:
    ids = {pb.id for pb in load_playbooks()}
    for name in ("oncall_train.yaml", "oncall_heldout.yaml"):
        data = yaml.safe_load((HERE / name).read_text(encoding="utf-8"))
        assert {c["id"] for c in data["labelled"]} <= ids
