"""The playbook library: complete, valid, and extensible by the user."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlwarden.diagnose.loader import BUNDLED_DIR, get_playbook, load_playbook_file, load_playbooks
from mlwarden.domain import ActionKind
from mlwarden.errors import InvalidInput, NotFound

# Every scenario the issue names, by the id of the playbook that covers it.
REQUIRED = [
    "covariate_drift",
    "upstream_schema_change",
    "feature_null_explosion",
    "training_serving_skew",
    "unit_scaling_change",
    "unseen_categories",
    "stale_feature_store",
    "label_delay",
    "label_prior_shift",
    "concept_drift",
    "seasonality_false_alarm",
    "feedback_loop",
    "constant_predictions",
    "confidence_collapse",
    "bad_model_deploy",
    "inference_latency_spike",
    "dependency_throttling",
    "inference_error_spike",
    "traffic_surge",
    "memory_leak",
    "data_arrival_delay",
    "duplicate_events",
    "timezone_bug",
    "miscalibrated_threshold",
    "class_imbalance_shift",
    "out_of_range_sensor",
]


def test_library_covers_every_required_scenario() -> None:
    ids = [pb.id for pb in load_playbooks()]
    assert len(ids) >= 25
    assert ids == sorted(ids)
    assert set(REQUIRED) <= set(ids)


def test_every_playbook_is_actionable() -> None:
    for pb in load_playbooks():
        assert len(pb.symptoms.phrases) >= 5, pb.id
        assert pb.symptoms.finding_kinds or pb.symptoms.signal_patterns, pb.id
        assert {c.kind for c in pb.checks} & {"query", "command"}, pb.id
        assert all(isinstance(a.action, ActionKind) for a in pb.actions)
        assert pb.confirm


def _write(folder: Path, name: str, data: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _valid(pid: str) -> dict:
    data = yaml.safe_load((BUNDLED_DIR / "memory_leak.yaml").read_text())
    data["id"] = pid
    return data


def test_user_folder_adds_and_overrides(tmp_path: Path) -> None:
    extra = _valid("gpu_xid_errors")
    extra["title"] = "GPU Xid errors"
    _write(tmp_path, "gpu_xid_errors", extra)
    override = _valid("memory_leak")
    override["title"] = "Memory leak (our runbook)"
    _write(tmp_path, "memory_leak", override)
    playbooks = load_playbooks(tmp_path)
    assert get_playbook("gpu_xid_errors", playbooks).title == "GPU Xid errors"
    assert get_playbook("memory_leak", playbooks).title == "Memory leak (our runbook)"
    assert len(playbooks) == len(load_playbooks()) + 1


def test_invalid_field_error_names_file_and_field(tmp_path: Path) -> None:
    bad = _valid("bad_one")
    bad["actions"][0]["action"] = "reboot_the_world"
    path = _write(tmp_path, "bad_one", bad)
    with pytest.raises(InvalidInput) as err:
        load_playbook_file(path)
    assert str(path) in err.value.message
    assert err.value.detail["field"] == "actions[0].action"


def test_escalator_threshold_must_fit_its_fact(tmp_path: Path) -> None:
    bad = _valid("bad_two")
    bad["severity"]["escalators"] = [
        {"to": "critical", "fact": "latency_ratio", "reason": "doubled"}
    ]
    with pytest.raises(InvalidInput, match="needs 'above'"):
        load_playbook_file(_write(tmp_path, "bad_two", bad))


def test_a_bare_yaml_null_check_is_refused(tmp_path: Path) -> None:
    # `check: null` is YAML's null, not the word: it would match every finding of the kind
    path = tmp_path / "null_words.yaml"
    text = yaml.safe_dump(_valid("null_words")).replace(
        "signal_patterns:\n", "signal_patterns:\n  - {kind: data_quality, check: null}\n", 1
    )
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match='quote it: check: "null"'):
        load_playbook_file(path)
    path.write_text(text.replace("check: null}", 'check: "null"}'), encoding="utf-8")
    assert load_playbook_file(path).symptoms.signal_patterns[0].check == "null"


def test_id_must_match_file_name_and_yaml_must_parse(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="must equal the file name"):
        load_playbook_file(_write(tmp_path, "other_name", _valid("some_id")))
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [unclosed", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_playbook_file(broken)


def test_missing_folder_and_unknown_id_are_clear() -> None:
    with pytest.raises(NotFound, match="does not exist"):
        load_playbooks("/nonexistent/playbooks")
    with pytest.raises(NotFound, match="known: bad_model_deploy"):
        get_playbook("no_such_thing")
