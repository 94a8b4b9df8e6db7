"""The whole policy is validated when it is loaded, the ``detection`` section too: wrong types,
unknown keys and negative thresholds are errors naming the line, the key, the value found and
what is expected; a partial file keeps every bundled default it does not name; a model's
overrides are written back to the file only when the file as a whole still validates."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from mlwarden.agent.policy import (
    DetectionSettings,
    PolicyError,
    load_policy,
    load_policy_text,
    model_override,
    write_model_override,
)
from mlwarden.domain import ActionKind
from mlwarden.errors import Conflict
from mlwarden.monitor.engine import MonitorConfig


def _problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as raised:
        load_policy_text(text)
    return [str(p) for p in raised.value.problems]


def test_every_monitor_setting_is_typed_in_the_policy_with_the_monitors_own_default() -> None:
    monitor = {f.name for f in dataclasses.fields(MonitorConfig)}
    assert set(DetectionSettings.model_fields) == monitor
    assert DetectionSettings().monitor_config() == MonitorConfig()
    assert load_policy_text("").defaults.monitor_config() == MonitorConfig()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "defaults:\n  detection:\n    drift_psi: high\n",
            "line 3: defaults.detection.drift_psi: Input should be a valid number, unable to "
            "parse string as a number, not 'high'",
        ),
        (
            "defaults:\n  detection:\n    min_labels: 2.5\n",
            "line 3: defaults.detection.min_labels: Input should be a valid integer, got a "
            "number with a fractional part, not 2.5",
        ),
        (
            "defaults:\n  detection:\n    streaming: kswin\n",
            "line 3: defaults.detection.streaming: Input should be 'adwin' or 'page_hinkley', "
            "not 'kswin'",
        ),
        (
            "defaults:\n  detection:\n    multivariate: [yes]\n",
            "line 3: defaults.detection.multivariate: Input should be a valid boolean",
        ),
        (
            "defaults:\n  detection:\n    rules: {signal: accuracy}\n",
            "line 3: defaults.detection.rules: Input should be a valid list",
        ),
        (
            "defaults:\n  retrain:\n    rollout: blue-green\n",
            "line 3: defaults.retrain.rollout: Input should be 'canary', 'shadow' or 'direct', "
            "not 'blue-green'",
        ),
        (
            "defaults:\n  approval:\n    always: [reboot]\n",
            "line 3: defaults.approval.always.0: Input should be 'none', 'alert', 'rollback', "
            "'fallback', 'retrain', 'disable', 'canary', 'shadow', 'promote' or 'repair', "
            "not 'reboot'",
        ),
    ],
)
def test_a_wrong_type_names_its_line_key_value_and_what_is_expected(
    text: str, expected: str
) -> None:
    assert _problems(text) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("versoin: 1\n", "line 1: versoin: unknown key 'versoin'; did you mean 'version'?"),
        (
            "defaults:\n  min_confidnce: 0.3\n",
            "line 2: defaults.min_confidnce: unknown key 'min_confidnce'; did you mean "
            "'min_confidence'?",
        ),
        (
            "defaults:\n  detection:\n    drift_pis: 0.3\n",
            "line 3: defaults.detection.drift_pis: unknown key 'drift_pis'; did you mean "
            "'drift_psi'?",
        ),
        (
            "models:\n  fraud:\n    detection:\n      rules:\n"
            "        - {signal: accuracy, minimum: 0.8, colour: red}\n",
            "line 5: models.fraud.detection.rules.0.colour: unknown key 'colour'; the keys "
            "here: signal, minimum, maximum",
        ),
    ],
)
def test_an_unknown_key_is_an_error_naming_the_nearest_known_one(text: str, expected: str) -> None:
    assert _problems(text) == [expected]


def test_negative_or_out_of_range_thresholds_are_refused_wherever_they_are_set() -> None:
    text = (
        "defaults:\n"
        "  min_confidence: 1.5\n"
        "  cooldown_minutes: {rollback: -5}\n"
        "  detection:\n"
        "    drift_psi: -0.2\n"
        "    drift_alpha: 1.0\n"
        "    rules: [{signal: accuracy, minimum: 0.9, maximum: 0.1}]\n"
        "models:\n"
        "  fraud:\n"
        "    detection: {latency_slo_ms: -3}\n"
    )
    assert sorted(_problems(text)) == sorted(
        [
            "line 2: defaults.min_confidence: Input should be less than or equal to 1, not 1.5",
            "line 3: defaults.cooldown_minutes.rollback: Input should be greater than or equal "
            "to 0, not -5",
            "line 5: defaults.detection.drift_psi: Input should be greater than 0, not -0.2",
            "line 6: defaults.detection.drift_alpha: Input should be less than 1, not 1.0",
            "line 7: defaults.detection.rules.0: minimum (0.9) is larger than maximum (0.1)",
            "line 10: models.fraud.detection.latency_slo_ms: Input should be greater than 0, "
            "not -3",
        ]
    )
    # a bound that turns a check off is still allowed where the monitor allows it
    policy = load_policy_text("defaults:\n  detection: {latency_slo_ms: null}\n")
    assert policy.defaults.monitor_config().latency_slo_ms is None


def test_a_partial_file_keeps_every_bundled_default_it_does_not_name(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(
        "defaults:\n"
        "  approval: {always: [rollback]}\n"
        "  detection: {drift_psi: 0.3, performance_tolerance: {accuracy: 0.05}}\n"
        "models:\n"
        "  fraud: {detection: {min_labels: 100}}\n"
    )
    policy, bundled = load_policy(file), load_policy(None)
    mine = policy.defaults.model_dump()
    theirs = bundled.defaults.model_dump()
    assert mine["approval"] == {**theirs["approval"], "always": [ActionKind.ROLLBACK]}
    assert {k: v for k, v in mine.items() if k not in ("approval", "detection")} == {
        k: v for k, v in theirs.items() if k not in ("approval", "detection")
    }
    config = policy.defaults.monitor_config()
    expected = dataclasses.replace(
        MonitorConfig(),
        drift_psi=0.3,
        performance_tolerance={**MonitorConfig().performance_tolerance, "accuracy": 0.05},
    )
    assert config == expected
    # a model's overrides merge over the file's defaults, which merge over the bundled ones
    assert policy.for_model("fraud").monitor_config() == dataclasses.replace(
        expected, min_labels=100
    )


def test_a_models_override_is_written_only_when_the_whole_file_validates(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text("defaults:\n  mode: advisory\nmodels:\n  other: {mode: autonomous}\n")

    before, after = write_model_override(file, "fraud", {"detection": {"drift_psi": 0.4}})
    assert model_override(before, "fraud") == {}
    assert model_override(after, "fraud") == {"detection": {"drift_psi": 0.4}}
    assert after.for_model("fraud").monitor_config().drift_psi == 0.4
    assert after.for_model("other").mode == "autonomous"  # the rest of the file is kept
    assert yaml.safe_load(file.read_text()) == {
        "defaults": {"mode": "advisory"},
        "models": {"other": {"mode": "autonomous"}, "fraud": {"detection": {"drift_psi": 0.4}}},
    }

    written = file.read_text()
    with pytest.raises(PolicyError) as raised:
        write_model_override(file, "fraud", {"detection": {"drift_psi": -1}, "mood": "calm"})
    assert sorted(str(p) for p in raised.value.problems) == [
        "models.fraud.detection.drift_psi: Input should be greater than 0, not -1",
        "models.fraud.mood: unknown key 'mood'; did you mean 'mode'?",
    ]
    assert file.read_text() == written  # refused: the file is as it was
    assert list(tmp_path.iterdir()) == [file]  # and no temporary file is left behind

    write_model_override(file, "fraud", {})  # {} removes the overrides
    assert "fraud" not in (yaml.safe_load(file.read_text())["models"])

    file.write_text("defaults:\n  mode: sometimes\n")
    with pytest.raises(Conflict, match="does not validate; fix it before"):
        write_model_override(file, "fraud", {"mode": "advisory"})
    assert file.read_text() == "defaults:\n  mode: sometimes\n"
