"""A real fleet for the dashboard tests.

Two electricity classifiers (real scikit-learn models) are registered, uploaded and deployed
through the HTTP API, real predictions go through the gateway and labels through the feedback
endpoint. Windows of those records are then measured with the project's own detectors
(system signals and findings, per-feature drift against the reference profile, accuracy from
the labels) and handed to the real agent in advisory mode, which opens incidents, decides and
queues approvals. A slow serving path is injected into the later windows (60 ms more, like
the scenario ``latency`` fault), so the agent asks to fall back. The windows' latencies are drawn
from a seeded steady serving path rather than taken from the gateway's own timings: on a loaded
machine one stalled request in the baseline window hid the slowdown and the fleet lost an
approval the tests rely on. A titanic model is registered without any traffic: the "no data
yet" state.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import skops.io
from sklearn.linear_model import LogisticRegression

from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import ClosedWindow
from mlwarden.agent.policy import load_policy_text
from mlwarden.datasets import load
from mlwarden.detect.drift import FeatureDriftDetector
from mlwarden.detect.system import SystemBaseline, SystemThresholds, detect_system, system_signals
from mlwarden.stats.profile import Profile, ProfileLayout
from mlwarden.store import Store

FEATURES = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
MODELS = ("elec", "elec-eu")
WINDOW = 150
WINDOWS = 8
SLOW_FROM = 4  # windows 4.. are slow
SLOW_MS = 60.0


def spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "task": "classification",
        "target": "target",
        "positive_class": 1,
        "features": [{"name": n, "type": "numeric", "nullable": True} for n in FEATURES],
    }


class Windows:
    """The window source handed to the agent: windows computed from stored records."""

    def __init__(self) -> None:
        self.windows: dict[str, list[ClosedWindow]] = {}
        self.visible = 0  # windows closed so far: the agent sees them one pass at a time

    def closed_windows(self, model: str, after: int | None) -> list[ClosedWindow]:
        return [
            w
            for w in self.windows.get(model, [])[: self.visible]
            if after is None or w.window > after
        ]


def _measure(store: Store, model: str, reference: pd.DataFrame, windows: Windows) -> None:
    records = store.fetch_records(model)
    model_spec = store.get_model(model)
    layout = ProfileLayout.fit(reference[FEATURES], model_spec)
    ref_profile = Profile.from_data(reference[FEATURES], layout)
    baseline: SystemBaseline | None = None
    detector = FeatureDriftDetector()
    for k in range(len(records) // WINDOW):
        chunk = records[k * WINDOW : (k + 1) * WINDOW]
        number = k + 1
        latency = 2.0 + np.random.default_rng(number).gamma(4.0, 0.5, size=len(chunk))
        if number >= SLOW_FROM:
            latency = latency + SLOW_MS
        times = [r["timestamp"] for r in chunk]
        signals: dict[str, float | None] = dict(
            system_signals(latency, [r["error"] for r in chunk], times)
        )
        labelled = [r for r in chunk if r["label"] is not None]
        signals["accuracy"] = float(
            np.mean([str(r["label"]) == str(r["prediction"]) for r in labelled])
        )
        frame = pd.DataFrame([r["features"] for r in chunk])
        report = detector.compare(ref_profile, Profile.from_data(frame[FEATURES], layout))
        signals.update(report.signals())
        if number == 2:  # window 1 carries the cold start of the gateway
            baseline = SystemBaseline.from_arrays(latency, [r["error"] for r in chunk], times)
        findings = report.findings(number)
        if baseline is not None:
            findings += detect_system(signals, baseline, SystemThresholds(), number)
        windows.windows.setdefault(model, []).append(
            ClosedWindow(
                window=number,
                ts=times[-1] + timedelta(seconds=1),
                signals=signals,
                findings=findings,
            )
        )


def build_fleet(url: str, admin_token: str, store: Store, writer_flush: Any) -> dict[str, Any]:
    """Fill the server at ``url`` with the fleet described in the module docstring."""
    elec = load("electricity")
    headers = {"Authorization": f"Bearer {admin_token}"}
    out: dict[str, Any] = {"windows": Windows()}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for offset, name in enumerate(MODELS):
            start = offset * 10_000
            train = elec.iloc[start : start + 2500]
            assert client.post("/v1/models", json=spec(name)).status_code == 201
            for c in (1.0, 0.01):
                model = LogisticRegression(max_iter=500, C=c).fit(train[FEATURES], train["target"])
                reference = train[[*FEATURES, "target"]].iloc[:300].to_dict(orient="records")
                response = client.post(
                    f"/v1/models/{name}/versions",
                    files={"file": ("m.skops", skops.io.dumps(model), "application/octet-stream")},
                    data={
                        "metrics": json.dumps(
                            {"accuracy": float(model.score(train[FEATURES], train["target"]))}
                        ),
                        "reference": json.dumps(reference),
                    },
                )
                assert response.status_code == 201, response.text
            for body in (
                {"live_version": 1, "reason": "first deploy"},
                {"live_version": 2, "fallback_version": 1, "reason": "v2 scored better offline"},
            ):
                response = client.put(f"/v1/models/{name}/deployment", json=body)
                assert response.status_code == 200, response.text
            recent = elec.iloc[start + 2500 : start + 2500 + WINDOW * WINDOWS]
            for start in range(0, len(recent), 200):
                batch = recent.iloc[start : start + 200]
                response = client.post(
                    f"/v1/models/{name}/predict",
                    json={"instances": batch[FEATURES].to_dict(orient="records")},
                )
                assert response.status_code == 200, response.text
                labels = [
                    {"id": p["id"], "label": int(t)}
                    for p, t in zip(response.json()["predictions"], batch["target"], strict=True)
                ]
                writer_flush()
                response = client.post(f"/v1/models/{name}/feedback", json=labels)
                assert response.status_code == 200, response.text
            _measure(store, name, train, out["windows"])
        assert client.post("/v1/models", json=titanic_spec()).status_code == 201
    agent = Agent(store, load_policy_text("defaults: {mode: advisory}"), out["windows"])
    for k in range(1, WINDOWS + 1):
        out["windows"].visible = k
        agent.run_once()
    out["agent"] = agent
    return out


def titanic_spec() -> dict[str, Any]:
    return {
        "name": "titanic",
        "task": "classification",
        "target": "Survived",
        "features": [
            {"name": "Age", "type": "numeric"},
            {"name": "Fare", "type": "numeric"},
            {"name": "Sex", "type": "categorical", "categories": ["male", "female"]},
        ],
    }
