"""An incident report's segments for a regression model, on a real model of the bundled bike
rentals: an answer counts as wrong when it misses by more than the live version's typical error
on its own reference sample (a regression's answer is never exactly its label, so "label !=
prediction" made nearly every row an error)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeRegressor

from mlwarden.agent.remedies.retrain import dump_estimator
from mlwarden.agent.reports import _reference_rows, answers_frame
from mlwarden.datasets import load
from mlwarden.diagnose.segments import find_segments
from mlwarden.domain import DeploymentState, FeatureSpec, ModelSpec, Task
from mlwarden.store.repository import Store

FEATURES = ["hour", "temp", "hum", "windspeed"]


def _bikes() -> pd.DataFrame:
    """The bundled hourly rentals with the hour as a number, shuffled: the rows are in time
    order, and the seasons' drift is not what these tests are about."""
    bikes = load("bike_sharing").sample(frac=1.0, random_state=0).reset_index(drop=True)
    hour = bikes["hr"].str.removesuffix("am").str.removesuffix("pm").astype(int) % 12
    bikes["hour"] = (hour + np.where(bikes["hr"].str.endswith("pm"), 12, 0)).astype(float)
    return bikes


def _deploy(store: Store, train: pd.DataFrame) -> tuple[ModelSpec, DecisionTreeRegressor]:
    model = DecisionTreeRegressor(max_depth=8, min_samples_leaf=30, random_state=0)
    model.fit(train[FEATURES], train["cnt"])
    spec = ModelSpec(
        name="bikes",
        task=Task.REGRESSION,
        features=[FeatureSpec(name=f) for f in FEATURES],
        target="cnt",
    )
    store.create_model(spec)
    sample = train.sample(500, random_state=0)[[*FEATURES, "cnt"]]
    version = store.add_version(
        "bikes",
        kind="sklearn",
        artifact=dump_estimator(model),
        reference_sample=sample.to_dict(orient="records"),
    )
    store.set_deployment(
        "bikes", DeploymentState(live_version=version.number), actor="test", reason="first"
    )
    return spec, model


def _records(frame: pd.DataFrame, answers: np.ndarray) -> list[dict]:
    """``frame``'s rows as the store returns labelled records, answered with ``answers``."""
    return [
        {
            "id": f"r{i}",
            "features": {f: float(row[f]) for f in FEATURES},
            "label": float(row["cnt"]),
            "prediction": float(answer),
        }
        for i, ((_, row), answer) in enumerate(zip(frame.iterrows(), answers, strict=True))
    ]


def test_a_healthy_regression_window_is_not_all_errors(sqlite_store: Store) -> None:
    bikes = _bikes()
    train, later = bikes.iloc[:8000], bikes.iloc[8000:10000]
    spec, model = _deploy(sqlite_store, train)
    reference, typical = _reference_rows(sqlite_store, spec, 1)
    assert reference is not None and typical is not None
    assert 10 < typical < 200  # rentals per hour the tree typically misses by
    window = answers_frame(_records(later, model.predict(later[FEATURES])), spec.task, typical)
    # "label != prediction" counted all 2,000 answers as errors; missing by more than the
    # typical error, a minority of the reference's answers do (a sample of the training data,
    # which the tree misses less) and about half of the new ones
    assert (window["label"] != window["prediction"]).mean() > 0.99
    assert 0.2 < reference["error"].mean() < 0.5
    assert 0.3 < window["error"].mean() < 0.6


def test_the_slice_answered_badly_leads_the_segments(sqlite_store: Store) -> None:
    bikes = _bikes()
    train, later = bikes.iloc[:8000], bikes.iloc[8000:10000]
    spec, model = _deploy(sqlite_store, train)
    reference, typical = _reference_rows(sqlite_store, spec, 1)
    answers = model.predict(later[FEATURES])
    humid = (later["hum"] >= train["hum"].quantile(0.75)).to_numpy()
    answers[humid] += 150  # humid hours are answered 150 rentals too high
    window = answers_frame(_records(later, answers), spec.task, typical)
    top = find_segments(window, reference, features=FEATURES)[0]
    assert top.feature == "hum" and top.ranked_by == "error"
    assert top.window_error is not None and top.reference_error is not None
    assert top.window_error > top.reference_error + 0.3
    assert 0.15 < top.window_share < 0.4
