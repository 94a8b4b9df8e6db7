"""Incident diagnosis from findings, signals, events and rows (a real sklearn model)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from mlwarden.datasets import load
from mlwarden.diagnose.culprits import feature_importance, psi, rank_culprits
from mlwarden.diagnose.incident import IncidentDiagnosis, diagnose_incident
from mlwarden.diagnose.loader import get_playbook, load_playbooks
from mlwarden.diagnose.segments import find_segments
from mlwarden.domain import Finding, Severity

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]


def _times(n: int) -> list[str]:
    start = pd.Timestamp("2026-11-26T13:30:00")
    return [(start + pd.Timedelta(minutes=4 * w)).isoformat() for w in range(n)]


def _null_incident() -> tuple[list[Finding], list[dict]]:
    signals = [
        {
            "window": w,
            "time": t,
            "null_rate.vicprice": 0.001 if w < 8 else 0.61,
            "null_rate.nswprice": 0.0,
            "accuracy": 0.89 if w < 11 else 0.71,
            "latency_p99_ms": 120.0 + (w % 3),
        }
        for w, t in enumerate(_times(12))
    ]
    findings = [
        Finding(
            kind="data_quality",
            detector="null_rate",
            features=["vicprice"],
            statistic="null_rate",
            score=0.61,
            threshold=0.05,
            window=8,
            message="vicprice null rate 61% > 5%",
        ),
        Finding(
            kind="concept_drift",
            detector="accuracy_drop",
            statistic="accuracy",
            score=0.18,
            threshold=0.05,
            window=11,
            message="accuracy fell 0.89 -> 0.71",
        ),
    ]
    return findings, signals


def test_null_explosion_explained_with_numbers_and_order() -> None:
    findings, signals = _null_incident()
    d = diagnose_incident(
        findings, signals=signals, feature_importance={"vicprice": 0.2, "nswprice": 0.3}
    )
    assert d.matches[0].id == "feature_null_explosion"
    assert "null_rate" in d.matches[0].evidence[0]
    assert d.severity.value == "critical"
    assert "more than half of the values are null" in d.severity_reasons
    assert (
        "vicprice's null rate went from 0.1% to 61% at 14:02 (window 8), three windows before "
        "accuracy fell from 0.89 to 0.71"
    ) in d.explanation
    assert "This matches 'Feature pipeline null explosion'" in d.explanation
    kinds = [e.kind for e in d.timeline]
    assert kinds.index("first data-quality change") < kinds.index("first performance drop")
    assert d.culprits[0].feature == "vicprice"
    assert {a["action"] for a in d.actions} >= {"fallback", "alert"}


def test_the_checks_name_the_model_and_the_culprit_feature() -> None:
    findings, signals = _null_incident()
    features = ["period", "nswprice", "vicprice"]
    d = diagnose_incident(findings, signals=signals, model="elec", features=features)
    runs = [c["run"] for c in d.checks]
    assert "mlwarden signals elec --signal null_rate.vicprice --last 24h" in runs
    assert any("m.name = 'elec'" in r and "features->>'vicprice'" in r for r in runs)
    assert not any(word in r for r in runs for word in ("MODEL", "FEATURE"))
    # a drift of the prediction's score names no input feature: FEATURE stays a placeholder
    on_score = [
        Finding(
            kind="data_drift",
            detector="psi",
            features=["score"],
            statistic="psi",
            score=0.4,
            threshold=0.2,
            window=8,
            message="score drifted",
        )
    ]
    d = diagnose_incident(
        on_score, model="elec", features=features, playbooks=[get_playbook("covariate_drift")]
    )
    assert d.matches[0].id == "covariate_drift"
    runs = [c["run"] for c in d.checks]
    assert "mlwarden signals elec --signal drift.psi.FEATURE --last 48h" in runs


def test_regression_after_deploy_points_at_rollback() -> None:
    signals = [{"window": w, "accuracy": 0.91 if w < 5 else 0.80} for w in range(9)]
    findings = [
        Finding(
            kind="concept_drift",
            detector="accuracy_drop",
            statistic="accuracy",
            score=0.11,
            threshold=0.05,
            window=5,
            message="accuracy dropped",
        )
    ]
    events = [{"type": "deploy", "window": 5, "description": "version 14 promoted to live"}]
    d = diagnose_incident(findings, events=events, signals=signals)
    assert d.matches[0].id == "bad_model_deploy"
    assert any("deploy event: version 14" in e for e in d.matches[0].evidence)
    assert d.facts.after_deploy and d.facts.metric_drop_points == pytest.approx(11.0)
    assert d.severity.value == "critical"
    assert d.timeline[0].kind == "deploy"
    assert d.actions[0]["action"] == "rollback"


def test_deploy_long_before_is_not_blamed() -> None:
    signals = [{"window": w, "accuracy": 0.91 if w < 20 else 0.80} for w in range(24)]
    findings = [
        Finding(
            kind="concept_drift",
            detector="accuracy_drop",
            statistic="accuracy",
            score=0.11,
            threshold=0.05,
            window=20,
            message="accuracy dropped",
        )
    ]
    d = diagnose_incident(findings, events=[{"type": "deploy", "window": 2}], signals=signals)
    assert d.matches[0].id == "concept_drift"
    assert not d.facts.after_deploy


def test_performance_drop_seen_only_in_signals_means_concept_drift() -> None:
    signals = [
        {"window": w, "f1": 0.8 - (0.0 if w < 6 else 0.15), "psi.age": 0.02} for w in range(10)
    ]
    d = diagnose_incident([], signals=signals)
    assert d.matches[0].id == "concept_drift"
    assert "f1 fell from 0.80 to 0.65" in d.explanation.lower()


def test_a_drop_the_moving_inputs_do_not_explain_reads_as_concept_drift() -> None:
    """Real inputs drift and predictions drift with them; when the monitor says the drop is
    beyond what the moved inputs explain (CBPE), the incident reads as concept drift, not as
    training-serving skew or plain covariate drift."""
    drift = [
        Finding(
            kind=kind,
            detector="drift",
            statistic="wasserstein",
            features=["nswprice"],
            score=0.3,
            threshold=0.1,
            window=w,
            message="moved",
        )
        for w in (1, 2)
        for kind in ("data_drift", "prediction_drift")
    ]
    drop = Finding(
        kind="concept_drift",
        detector="concept.performance_drop",
        statistic="accuracy_drop",
        score=0.11,
        threshold=0.02,
        window=1,
        message="accuracy fell",
        evidence={"check": "unexplained_by_inputs"},
    )
    events = [{"type": "deploy", "window": -20, "description": "first deployment"}]
    d = diagnose_incident([*drift, drop], events=events)
    assert d.matches[0].id == "concept_drift", [m.id for m in d.matches]
    plain = diagnose_incident([*drift, drop.model_copy(update={"evidence": {}})], events=events)
    assert plain.matches[0].id != "concept_drift"  # without the attribution it is ambiguous


def test_latency_and_constant_predictions() -> None:
    signals = [{"window": w, "latency_p99_ms": 200.0 if w < 4 else 1800.0} for w in range(8)]
    lat = [
        Finding(
            kind="latency",
            detector="latency_p99",
            statistic="p99_ms",
            score=1800,
            threshold=500,
            window=4,
            message="p99 1800 ms",
        )
    ]
    d = diagnose_incident(lat, signals=signals)
    assert d.matches[0].id == "inference_latency_spike"
    assert d.facts.latency_ratio == pytest.approx(9.0) and d.severity.value == "critical"
    const = [
        Finding(
            kind="prediction_drift",
            detector="constant_predictions",
            statistic="unique_predictions",
            score=1,
            threshold=2,
            window=3,
            message="1 distinct prediction",
            evidence={"unique_predictions": 1},
        )
    ]
    c = diagnose_incident(const)
    assert c.matches[0].id == "constant_predictions" and c.severity.value == "critical"


def _found(
    kind: str,
    detector: str,
    statistic: str,
    window: int = 4,
    features: list[str] | None = None,
    check: str | None = None,
) -> Finding:
    return Finding(
        kind=kind,
        detector=detector,
        statistic=statistic,
        features=features or [],
        score=1.0,
        threshold=0.5,
        window=window,
        message=statistic,
        evidence={"check": check} if check else {},
    )


def test_the_most_upstream_evidence_decides_the_playbook() -> None:
    # findings as the real detectors word them; each cause drags prediction drift along
    collapse = [
        _found("prediction_drift", "prediction_collapse", "top_class_share", 4, ["prediction"]),
        _found("prediction_drift", "prediction_drift", "jensen_shannon", 4, ["prediction"]),
    ]
    errors = [_found("error_rate", "system.error_rate", "error_rate")]
    assert diagnose_incident(errors + collapse).matches[0].id == "inference_error_spike"
    # the same collapse on its own is the model answering one class
    assert diagnose_incident(collapse).matches[0].id == "constant_predictions"
    unit = [
        _found(
            "data_quality", "data_quality", "scale_orders_of_magnitude", 4, ["load"], "unit_change"
        ),
        _found("data_drift", "feature_drift", "wasserstein", 4, ["load"]),
    ]
    assert diagnose_incident(unit + collapse).matches[0].id == "unit_scaling_change"
    renamed = [
        _found("data_quality", "data_quality", "rows", 4, ["load_kw"], "unknown_column"),
        _found("data_quality", "data_quality", "null_rate", 4, ["load"], "null_burst"),
    ]
    assert diagnose_incident(renamed + errors + collapse).matches[0].id == (
        "upstream_schema_change"
    )
    nulls = [_found("data_quality", "data_quality", "null_rate", 4, ["load"], "null_burst")]
    assert diagnose_incident(nulls + collapse).matches[0].id == "feature_null_explosion"
    moved = [_found("data_drift", "feature_drift", "wasserstein", 4, ["load"])]
    assert diagnose_incident(moved + collapse[1:]).matches[0].id == "covariate_drift"


def test_inputs_that_moved_the_scores_are_covariate_drift_not_a_confidence_collapse() -> None:
    """A feature shifted by one standard deviation moves the model's scores with it (the
    findings of ``elec_covariate_shift`` shuffled, window 4: confidence 0.81 -> 0.84, no
    collapse of the answers' spread). The input drift is the upstream cause, so the incident is
    covariate drift, also when the agent's diagnosis (``covariate_drift_stable``) fits both
    playbooks; the scores' move alone stays a confidence collapse."""
    moved = [
        _found("data_drift", "feature_drift", "wasserstein", 4, ["nswdemand"]),
        _found("data_drift", "data_quality", "out_of_range_rate", 4, ["nswdemand"], "out_of_range"),
    ]
    scores = [
        _found("prediction_drift", "prediction_drift", "wasserstein", 4, ["score"], "confidence")
    ]
    for agent in (None, "covariate_drift_stable"):
        matches = diagnose_incident(moved + scores, agent_diagnosis=agent).matches
        assert [m.id for m in matches[:2]] == ["covariate_drift", "confidence_collapse"], agent
    assert diagnose_incident(scores).matches[0].id == "confidence_collapse"


def test_a_change_long_before_the_incident_and_a_late_finding_weigh_less() -> None:
    # an old null burst (windows 2-5) in the signals does not make a later accuracy drop a
    # data-quality incident, nor does a drift finding eight windows into it
    signals = [
        {
            "window": w,
            "null_rate.load": 0.6 if 2 <= w <= 5 else 0.0,
            "accuracy": 0.9 if w < 16 else 0.7,
        }
        for w in range(28)
    ]
    findings = [
        _found("concept_drift", "concept.performance_drop", "accuracy_drop", 16),
        _found("data_drift", "feature_drift", "wasserstein", 24, ["load"]),
    ]
    d = diagnose_incident(findings, signals=signals)
    assert d.matches[0].id == "concept_drift"


def test_a_bad_deploy_needs_a_deploy() -> None:
    findings = [
        _found("concept_drift", "concept.performance_drop", "accuracy_drop", 6),
        _found("prediction_drift", "prediction_drift", "jensen_shannon", 6, ["prediction"]),
    ]
    assert "bad_model_deploy" not in [m.id for m in diagnose_incident(findings).matches]
    deployed = diagnose_incident(findings, events=[{"type": "deploy", "window": 6}])
    assert deployed.matches[0].id == "bad_model_deploy"


def test_reports_follow_root_cause_template() -> None:
    findings, signals = _null_incident()
    findings[0] = findings[0].model_copy(update={"message": "nulls <script>alert(1)</script>"})
    d = diagnose_incident(
        findings,
        signals=signals,
        model="elec",
        resolution=["fallback to version 3 at 14:20"],
        generated_at="2026-11-26T14:30:00Z",
    )
    md = d.to_markdown()
    for section in (
        "## Symptom",
        "## Impact",
        "## Timeline",
        "## Hypotheses",
        "## Investigation",
        "## Resolution",
    ):
        assert section in md
    assert "fallback to version 3 at 14:20" in md
    html = d.to_html()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "src=" not in html and "<link" not in html  # self-contained
    assert "<h2>Hypotheses</h2>" in html
    again = IncidentDiagnosis.model_validate(json.loads(d.to_json()))
    assert again == d
    assert (
        diagnose_incident(
            findings,
            signals=signals,
            model="elec",
            resolution=["fallback to version 3 at 14:20"],
            generated_at="2026-11-26T14:30:00Z",
        ).to_json()
        == d.to_json()
    )


@pytest.fixture(scope="module")
def titanic_model() -> tuple[object, pd.DataFrame, pd.Series]:
    df = load("titanic")
    X, y = df[FEATURES], df["Survived"]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=0)
    numeric = ["Pclass", "Age", "SibSp", "Parch", "Fare"]
    pre = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                ["Sex", "Embarked"],
            ),
        ]
    )
    model = make_pipeline(pre, RandomForestClassifier(n_estimators=60, max_depth=6, random_state=0))
    model.fit(X_train, y_train)
    return model, X_test.reset_index(drop=True), y_test.reset_index(drop=True)


def _with_error(model, X: pd.DataFrame, y: pd.Series) -> pd.DataFrame:
    out = X.copy()
    out["error"] = (model.predict(X) != y.to_numpy()).astype(int)
    return out


def test_segments_find_the_slice_where_errors_grew(titanic_model) -> None:
    model, X, y = titanic_model
    reference = _with_error(model, X, y)
    broken = X.copy()
    first = broken["Pclass"] == 1
    # An upstream bug swaps the sex of first-class passengers only.
    broken.loc[first, "Sex"] = broken.loc[first, "Sex"].map({"male": "female", "female": "male"})
    window = _with_error(model, broken, y)
    assert window["error"].mean() > reference["error"].mean() + 0.05
    segments = find_segments(window, reference, features=FEATURES)
    top = [(s.feature, s.value) for s in segments[:2]]
    assert ("Pclass", "< 2") in top
    seg = next(s for s in segments if (s.feature, s.value) == ("Pclass", "< 2"))
    assert seg.window_error > seg.reference_error + 0.3
    assert seg.window_share == pytest.approx(first.mean(), abs=1e-3)


def test_culprits_weight_drift_by_permutation_importance(titanic_model) -> None:
    model, X, y = titanic_model
    importance = feature_importance(model, X, y, method="permutation", n_repeats=3)
    assert importance["Sex"] == max(importance.values())
    assert feature_importance(model, X, y, n_repeats=3) == importance  # auto without shap
    rng = np.random.default_rng(0)
    window = X.copy()
    window.loc[rng.random(len(window)) < 0.6, "Age"] = np.nan  # null explosion
    window["Fare"] = window["Fare"] * 100  # unit change
    culprits = rank_culprits(feature_importance=importance, reference_rows=X, window_rows=window)
    assert {c.feature for c in culprits[:2]} == {"Age", "Fare"}
    assert "Sex" not in {c.feature for c in culprits}  # not drifted
    assert psi(X["Age"], window["Age"]) > 0.5
    d = diagnose_incident(
        [
            Finding(
                kind="data_quality",
                detector="null_rate",
                features=["Age"],
                statistic="null_rate",
                score=0.6,
                threshold=0.05,
                window=2,
                message="Age nulls",
            )
        ],
        feature_importance=importance,
        window_rows=window,
        reference_rows=X,
    )
    assert d.culprits[0].feature in {"Age", "Fare"} and d.culprits[0].drift_source == "psi"


def test_importance_orders_equal_drift() -> None:
    findings = [
        Finding(
            kind="data_drift",
            detector="psi",
            features=[name],
            statistic="psi",
            score=0.4,
            threshold=0.2,
            window=1,
            message="drift",
        )
        for name in "ab"
    ]
    assert [c.feature for c in rank_culprits(findings)] == ["a", "b"]
    ranked = rank_culprits(findings, feature_importance={"a": 0.01, "b": 0.3})
    assert [c.feature for c in ranked] == ["b", "a"]


def test_the_agents_diagnosis_and_severity_lead_the_report() -> None:
    """An incident the agent diagnosed as covariate drift with a drop, at high severity: the
    report names a playbook that explains that diagnosis and the same severity."""
    drift = [
        Finding(
            kind=kind,
            detector="drift",
            statistic="wasserstein",
            features=["nswprice"],
            score=0.3,
            threshold=0.1,
            window=w,
            message="moved",
        )
        for w in (1, 2)
        for kind in ("data_drift", "prediction_drift")
    ]
    drop = Finding(
        kind="concept_drift",
        detector="concept.performance_drop",
        statistic="accuracy_drop",
        score=0.2,
        threshold=0.02,
        window=1,
        message="accuracy fell",
    )
    alone = diagnose_incident([*drift, drop])
    told = diagnose_incident(
        [*drift, drop],
        agent_diagnosis="covariate_drift_performance_drop",
        agent_severity=Severity.HIGH,
    )
    top = {pb.id: pb for pb in load_playbooks()}[told.matches[0].id]
    assert "covariate_drift_performance_drop" in top.explains
    assert told.severity is Severity.HIGH
    if alone.severity is not Severity.HIGH:
        assert f"the playbook alone says {alone.severity.value}" in told.severity_reasons[0]
