"""The policy file: defaults, per-model overrides and errors that name their line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlwarden.agent.policy import (
    Diagnosis,
    ModelPolicy,
    PolicyError,
    bundled_defaults,
    load_policy,
    load_policy_text,
)
from mlwarden.cli.main import app
from mlwarden.domain import ActionKind


def test_default_policy_is_the_decision_table() -> None:
    policy = load_policy().for_model("any")
    table = bundled_defaults()["actions"]
    for diagnosis in Diagnosis:
        assert [a.value for a in policy.actions_for(diagnosis)] == table[diagnosis.value]
    assert policy.actions_for(Diagnosis.NOISE) == [ActionKind.NONE]
    assert policy.actions_for(Diagnosis.REGRESSION_AFTER_DEPLOY)[0] is ActionKind.ROLLBACK
    assert policy.retrain.min_labels == 200


def test_every_diagnosis_has_a_playbook_that_explains_it() -> None:
    """The incident report picks its playbook among those that explain the agent's diagnosis;
    a diagnosis no playbook explains would leave header and report telling different stories,
    and a playbook naming an unknown diagnosis would never be put first."""
    from mlwarden.diagnose.loader import load_playbooks

    playbooks = load_playbooks()
    named = {row for pb in playbooks for row in pb.explains}
    assert named <= {d.value for d in Diagnosis}
    assert {d.value for d in Diagnosis} - {Diagnosis.NOISE.value} <= named


def test_model_overrides_merge_over_defaults() -> None:
    policy = load_policy_text(
        "defaults:\n  mode: autonomous\n  persistence: {k: 2, n: 4}\n"
        "models:\n  fraud:\n    mode: advisory\n    persistence: {k: 3}\n"
    )
    fraud = policy.for_model("fraud")
    assert fraud.mode == "advisory"
    assert (fraud.persistence.k, fraud.persistence.n) == (3, 4)
    assert policy.for_model("churn").mode == "autonomous"


def test_a_partial_policy_file_keeps_the_bundled_keys_it_does_not_name(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text("defaults:\n  cooldown_minutes: {alert: 5}\n")
    policy = load_policy(file).for_model("any")
    assert policy.cooldown(ActionKind.ALERT) == 5
    assert policy.cooldown(ActionKind.ROLLBACK) == 60  # the bundled cooldowns stay
    assert policy.cooldown(ActionKind.RETRAIN) == 240
    assert policy.drift.accept_after_windows == 6


def test_policy_text_is_merged_over_the_bundled_defaults_too() -> None:
    """The scenarios and tests build policies from text: a partial one gets the bundled
    values, the same as a partial file, and not other defaults written in Python."""
    policy = load_policy_text("defaults:\n  mode: advisory\n  retrain: {rollout: shadow}\n")
    model = policy.for_model("any")
    bundled = load_policy().for_model("any")
    assert model.mode == "advisory" and model.retrain.rollout == "shadow"
    assert model.retrain.min_labels == bundled.retrain.min_labels == 200
    assert model.cooldown(ActionKind.ALERT) == bundled.cooldown(ActionKind.ALERT) == 10
    assert model.actions == bundled.actions


def test_the_bundled_yaml_is_the_only_source_of_default_values() -> None:
    """Nothing of the policy has a default in Python: without the YAML nothing validates."""
    with pytest.raises(ValueError, match="Field required"):
        ModelPolicy.model_validate({"mode": "autonomous"})
    table = {**bundled_defaults(), "actions": {"noise": ["none"]}}
    with pytest.raises(ValueError, match="no row for data_quality"):
        ModelPolicy.model_validate(table)


BAD = """version: 1
defaults:
  mode: sometimes
  persistence:
    k: 9
    n: 5
  actions:
    concept_drift: [retrain, dance]
models:
  fraud:
    max_actions_per_day: -1
"""


def test_errors_carry_their_line() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(BAD, "bad.yaml")
    found = {(p.line, p.path) for p in info.value.problems}
    assert (3, "defaults.mode") in found
    assert (4, "defaults.persistence") in found
    assert (8, "defaults.actions.concept_drift.1") in found
    assert (11, "models.fraud.max_actions_per_day") in found
    # errors inherited from the defaults are reported once, at the defaults
    assert not any(p.path == "models.fraud.mode" for p in info.value.problems)


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text("defaults:\n  mode: autonomous\n  k: [1, 2\n", "x.yaml")
    assert info.value.problems[0].line is not None
    assert "not valid YAML" in info.value.problems[0].message


def test_cli_policy_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good.yaml"
    good.write_text("defaults:\n  mode: advisory\n")
    result = runner.invoke(app, ["policy", "validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "valid policy" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = runner.invoke(app, ["policy", "validate", str(bad)])
    assert result.exit_code == 1
    assert "line 3: defaults.mode" in result.output
    assert "line 11: models.fraud.max_actions_per_day" in result.output
    missing = runner.invoke(app, ["policy", "validate", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
