"""The monitor end to end on real models: clean streams, concept drift, data drift with
impact, late labels, system faults and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlwarden.datasets import load
from mlwarden.domain import FeatureSpec, FindingKind, ModelSpec, Task
from mlwarden.errors import InvalidInput
from mlwarden.monitor.engine import Monitor, MonitorConfig, WindowResult

FEATURES = ["a", "b", "c"]


class Stream:
    """Synthetic records scored by a real logistic regression."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        train = self.inputs(4000)
        self.model = LogisticRegression().fit(train[FEATURES], train["label"])
        self.next_id = 0

    def inputs(self, n: int, shift: float = 0.0, flip: bool = False) -> pd.DataFrame:
        x = self.rng.normal(size=(n, 3))
        x[:, 0] += shift
        y = (self.rng.random(n) < 1 / (1 + np.exp(-(2 * x[:, 0] - x[:, 1])))).astype(int)
        if flip:  # the relation inverts where b > 0.3: same inputs, different truth
            region = x[:, 1] > 0.3
            y[region] = 1 - y[region]
        frame = pd.DataFrame(x, columns=FEATURES)
        frame["label"] = y
        return frame

    def records(self, n: int, **kwargs: object) -> pd.DataFrame:
        frame = self.inputs(n, **kwargs)  # type: ignore[arg-type]
        score = self.model.predict_proba(frame[FEATURES])[:, 1]
        frame["score"] = score
        frame["prediction"] = (score > 0.5).astype(int)
        frame["id"] = [f"r{self.next_id + i}" for i in range(n)]
        frame["timestamp"] = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(
            np.arange(self.next_id, self.next_id + n), unit="s"
        )
        frame["latency_ms"] = self.rng.lognormal(3, 0.3, n)
        frame["error"] = None
        self.next_id += n
        return frame


@pytest.fixture(scope="module")
def stream() -> Stream:
    return Stream()


@pytest.fixture(scope="module")
def monitor(stream: Stream) -> Monitor:
    return Monitor(stream.records(5000), config=MonitorConfig(anomaly=False))


def _kinds(result: WindowResult) -> set[str]:
    return {f.kind.value for f in result.findings}


def test_clean_windows_raise_no_finding_and_carry_signals_with_intervals(stream: Stream) -> None:
    monitor = Monitor(stream.records(5000))
    alarms = [
        r.index for r in (monitor.process(stream.records(1000)) for _ in range(15)) if r.findings
    ]
    assert alarms == []
    result = monitor.process(stream.records(1000))
    s = result.signals
    assert s["accuracy_ci_low"] < s["accuracy"] < s["accuracy_ci_high"]
    assert abs(s["estimated_accuracy"] - s["accuracy"]) < 0.05
    assert s["estimation_error.accuracy"] is not None
    for key in ("latency_p99_ms", "error_rate", "null_rate.a", "drift.a", "roc_auc", "ece"):
        assert s[key] is not None, key
    json.dumps(result.to_dict(include_profile=True))


def test_label_flip_in_a_region_is_concept_drift(stream: Stream, monitor: Monitor) -> None:
    result = monitor.process(stream.records(1000, flip=True), index=100)
    concept = [f for f in result.findings if f.kind is FindingKind.CONCEPT_DRIFT]
    assert concept, result.findings
    assert concept[0].evidence["inputs_stable"] is True
    assert concept[0].window == 100
    assert "data_drift" not in _kinds(result)


def test_covariate_shift_with_drop_is_data_drift_with_impact(stream: Stream) -> None:
    """Inputs crowd onto the decision boundary, the relation unchanged: accuracy falls, and the
    model's own confidence (CBPE) predicts the fall, so the inputs explain it."""
    monitor = Monitor(stream.records(5000), config=MonitorConfig(anomaly=False))
    frame = stream.records(1000)
    x = stream.rng.normal(size=(1000, 3))
    x[:, 0] = x[:, 1] / 2 + stream.rng.normal(scale=0.1, size=1000)  # 2a - b near 0
    frame[FEATURES] = x
    score = stream.model.predict_proba(frame[FEATURES])[:, 1]
    frame["score"], frame["prediction"] = score, (score > 0.5).astype(int)
    frame["label"] = (stream.rng.random(1000) < 1 / (1 + np.exp(-(2 * x[:, 0] - x[:, 1])))).astype(
        int
    )
    result = monitor.process(frame)
    impact = [f for f in result.findings if "impact" in f.evidence]
    assert impact and impact[0].kind is FindingKind.DATA_DRIFT
    assert "a" in impact[0].features
    assert impact[0].evidence["impact"]["metric"] == "accuracy"
    assert not _kinds(result) & {"concept_drift"}


def test_a_relation_change_on_moving_inputs_is_concept_drift(stream: Stream) -> None:
    """The inputs move and the labels flip in half the input space: the drop is far beyond what
    the model's confidence on the moved inputs predicts, so it is concept drift, not data drift
    with impact (real inputs always move; that must not hide a changed relation)."""
    monitor = Monitor(stream.records(5000), config=MonitorConfig(anomaly=False))
    result = monitor.process(stream.records(1000, shift=1.5, flip=True))
    drops = [f for f in result.findings if f.kind is FindingKind.CONCEPT_DRIFT]
    assert drops, [f.message for f in result.findings]
    evidence = drops[0].evidence
    assert evidence["inputs_stable"] is False and "a" in evidence["moved_features"]
    assert evidence["unexplained"]["estimated"] - evidence["unexplained"]["measured"] > 0.1
    assert "impact" not in evidence
    assert "data_drift" in _kinds(result)


def test_late_labels_update_the_windows_performance(stream: Stream) -> None:
    monitor = Monitor(stream.records(5000), config=MonitorConfig(anomaly=False))
    frame = stream.records(1000, flip=True)
    labels = dict(zip(frame["id"], frame["label"], strict=True))
    result = monitor.process(frame.drop(columns="label"), index=0)
    assert result.signals["accuracy"] is None and result.signals["estimated_accuracy"] > 0.7
    assert result.labelled == 0 and not _kinds(result) & {"concept_drift"}
    updated = monitor.add_labels({**labels, "nobody": 1})
    assert [r.index for r in updated] == [0]
    assert updated[0].labelled == 1000
    assert updated[0].signals["accuracy"] < 0.65
    assert updated[0].signals["estimation_error.accuracy"] > 0.1
    assert "concept_drift" in _kinds(updated[0])
    assert monitor.unknown_labels == 1


def test_windows_held_for_late_labels_are_bounded_by_their_own_setting(stream: Stream) -> None:
    """``late_label_windows`` bounds what is held for late labels, apart from the change
    point's history (``keep_windows``); 0 holds nothing and every late label is unknown."""
    frames = [stream.records(200) for _ in range(3)]
    for frame, prefix in zip(frames, "abc", strict=True):
        frame["id"] = [f"{prefix}{i}" for i in range(len(frame))]
    labels = {i: v for f in frames for i, v in zip(f["id"], f["label"], strict=True)}
    for kept in (0, 2):
        config = MonitorConfig(anomaly=False, late_label_windows=kept, keep_windows=50)
        monitor = Monitor(stream.records(2000), config=config)
        for index, frame in enumerate(frames):
            monitor.process(frame.drop(columns="label"), index=index)
        updated = monitor.add_labels(labels)
        assert [r.index for r in updated] == [1, 2][:kept]
        assert monitor.unknown_labels == 200 * (3 - kept)
        assert all(r.labelled == 200 for r in updated)


def test_latency_and_error_spikes(stream: Stream, monitor: Monitor) -> None:
    frame = stream.records(1000)
    frame["latency_ms"] *= 4
    frame.loc[frame.index[:80], "error"] = "timeout"
    kinds = _kinds(monitor.process(frame))
    assert {"latency", "error_rate"} <= kinds


def test_collapse_is_reported(stream: Stream, monitor: Monitor) -> None:
    frame = stream.records(1000)
    frame["prediction"] = 1
    frame["score"] = 0.97
    collapse = [f for f in monitor.process(frame).findings if f.evidence.get("collapse")]
    assert collapse and collapse[0].kind is FindingKind.PREDICTION_DRIFT


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "one_row",
        "all_null",
        "strings_in_numeric",
        "mixed_types",
        "missing_feature",
        "extra_feature",
    ],
)
def test_bad_input_gives_findings_never_crashes_never_nan(
    stream: Stream, monitor: Monitor, case: str
) -> None:
    frame = stream.records(500)
    if case == "empty":
        frame = frame.iloc[0:0]
    elif case == "one_row":
        frame = frame.iloc[:1]
    elif case == "all_null":
        frame["a"] = None
    elif case == "strings_in_numeric":
        frame["b"] = frame["b"].astype(object)
        frame.loc[frame.index[:200], "b"] = "n/a"
    elif case == "mixed_types":
        frame["c"] = [str(v) if i % 2 else v for i, v in enumerate(frame["c"])]
        frame["label"] = frame["label"].astype(object)
        frame.loc[frame.index[::3], "label"] = frame.loc[frame.index[::3], "label"].astype(str)
    elif case == "missing_feature":
        frame = frame.drop(columns="a")
    elif case == "extra_feature":
        frame["surprise"] = 1.0
    result = monitor.process(frame)
    for value in result.signals.values():
        assert value is None or math.isfinite(value)
    for finding in result.findings:
        assert math.isfinite(finding.score) and finding.message
    json.dumps(result.to_dict())
    if case in ("empty", "all_null", "strings_in_numeric", "missing_feature"):
        assert result.findings, case
    if case == "empty":
        assert _kinds(result) == {"freshness"}


def test_reference_errors_are_clear(stream: Stream) -> None:
    with pytest.raises(InvalidInput, match="no rows"):
        Monitor(stream.records(10).iloc[0:0])
    with pytest.raises(InvalidInput, match="DataFrame"):
        Monitor([{"a": 1}])  # type: ignore[arg-type]
    config, unknown = MonitorConfig.from_mapping({"drift_alpha": 0.05, "colour": "red"})
    assert config.drift_alpha == 0.05 and unknown == ["colour"]


def test_electricity_concept_drift_over_the_years() -> None:
    """A model trained on the first weeks of Elec2 loses accuracy later; the monitor says so."""
    data = load("electricity")
    features = ["period", "nswprice", "nswdemand"]
    spec = ModelSpec(
        name="elec",
        task=Task.CLASSIFICATION,
        features=[FeatureSpec(name=f) for f in features],
        positive_class=1,
    )
    train = data.iloc[:3000]
    model = LogisticRegression(max_iter=500).fit(train[features], train["target"])

    def records(rows: pd.DataFrame) -> pd.DataFrame:
        frame = rows[features].copy()
        score = model.predict_proba(frame)[:, 1]
        frame["score"] = score
        frame["prediction"] = (score > 0.5).astype(int)
        frame["label"] = rows["target"].to_numpy()
        return frame

    monitor = Monitor(records(data.iloc[3000:6000]), spec, config=MonitorConfig(anomaly=False))
    results = [
        monitor.process(records(data.iloc[start : start + 2000]))
        for start in range(6000, 45_000, 6000)
    ]
    performance = [
        f
        for r in results
        for f in r.findings
        if f.kind in (FindingKind.CONCEPT_DRIFT, FindingKind.DATA_DRIFT)
        and ("impact" in f.evidence or f.kind is FindingKind.CONCEPT_DRIFT)
    ]
    assert performance, "the price relation drifts over the years"
    assert any(r.signals["accuracy"] is not None and r.signals["accuracy"] < 0.7 for r in results)


def test_a_reference_of_training_rows_without_model_outputs_is_accepted() -> None:
    """Training data has labels but no predictions: the monitor must start, not crash."""
    import numpy as np
    import pandas as pd

    from mlwarden.monitor.engine import Monitor

    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"x": rng.normal(size=500), "label": rng.integers(0, 2, 500)})
    monitor = Monitor(reference)
    result = monitor.process(pd.DataFrame({"x": rng.normal(size=300)}), index=0)
    assert result.findings == []


def test_domain_classifier_runs_only_where_it_can_add_a_joint_change() -> None:
    """With every detector on, the domain classifier looks at a window only when no per-feature
    test found drift and the moment screen saw the means or covariances move; a correlation
    that appears with every marginal the same is still found, by the classifier."""
    # a stream of its own: the module's draws depend on which tests ran before on this worker,
    # and one such draw gave the clean window a performance change point
    stream = Stream()
    reference = stream.records(3000)
    gated = Monitor(reference, config=MonitorConfig(multivariate=True, anomaly=False))
    always = Monitor(
        reference, config=MonitorConfig(multivariate=True, anomaly=False, multivariate_screen=None)
    )

    def detectors(monitor: Monitor, frame: pd.DataFrame) -> set[str]:
        return {f.detector for f in monitor.process(frame).findings}

    correlated = stream.records(1000)
    a, c = correlated["a"].to_numpy(), correlated["c"].to_numpy()
    correlated["c"] = 0.8 * a + 0.6 * c  # c keeps its N(0, 1) marginal, now tied to a
    assert detectors(gated, correlated) == {"domain_classifier"}

    shifted = stream.records(1000, shift=1.0)
    assert "domain_classifier" in detectors(always, shifted)  # every window, as before
    found = detectors(gated, shifted)
    assert "feature_drift" in found and "domain_classifier" not in found

    clean = stream.records(1000)
    assert detectors(gated, clean) == detectors(always, clean) == set()
