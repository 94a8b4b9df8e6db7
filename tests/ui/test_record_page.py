"""A recorded prediction explained on the dashboard: the incident page lists its records, and a
record's page shows each feature's contribution to the real model's answer, the incident's
culprit features marked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import skops.io
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

from mlwarden.datasets import load
from mlwarden.domain import DeploymentState, FeatureSpec, ModelSpec, Task
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store.incidents import AgentRepo

FEATURES = ["nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]


def test_an_incidents_record_is_explained_with_its_culprit_marked(
    sqlite_store: Store, tmp_path: Path
) -> None:
    store = sqlite_store
    frame = load("electricity").iloc[:3000]
    model = LogisticRegression(max_iter=500).fit(frame[FEATURES], frame["target"])
    store.create_model(
        ModelSpec(
            name="elec",
            task=Task.CLASSIFICATION,
            features=[FeatureSpec(name=f) for f in FEATURES],
            target="target",
        )
    )
    reference = frame[FEATURES].iloc[:1000]
    store.add_version(
        "elec",
        kind="sklearn",
        artifact=skops.io.dumps(model),
        reference_sample=reference.to_dict(orient="records"),
    )
    store.set_deployment("elec", DeploymentState(live_version=1), actor="t", reason="first")
    settings = Settings(data_dir=tmp_path / "data", auth=False, write_flush_interval_s=0.05)
    app = create_app(settings, store)
    with TestClient(app) as client:
        rows = frame[FEATURES].iloc[2000:2010].to_dict(orient="records")
        answered = client.post("/v1/models/elec/predict", json={"instances": rows})
        assert answered.status_code == 200
        assert app.state.mlwarden.writer.flush(timeout=30)
        repo = AgentRepo(store)
        incident = repo.create_incident("elec", 1, {}, "prices moved")
        repo.update_incident(incident, features=["nswprice"])

        page = client.get(f"/ui/incidents/{incident}")
        assert page.status_code == 200
        links = re.findall(r'href="(/ui/models/elec/records/[^"]+)"', page.text)
        assert len(links) == 5  # five of its newest records (one batch: one time)
        ids = [p["id"] for p in answered.json()["predictions"]]
        listed = [link.split("/")[-1].split("?")[0] for link in links]
        assert set(listed) <= set(ids) and links[0].endswith(f"?incident={incident}")
        instance = rows[ids.index(listed[0])]

        record = client.get(links[0].replace("&amp;", "&"))
        assert record.status_code == 200, record.text
        body = record.text
        assert "exact Shapley values" in body
        table = body[body.index('id="contributions"') :]
        shown = re.findall(r"<tr( class=\"culprit\")?><td>(\w+)", table)
        assert {name for _, name in shown} == set(FEATURES)
        assert [name for culprit, name in shown if culprit] == ["nswprice"]
        # the numbers are the API's: the same explanation of the same inputs
        api = client.post(
            "/v1/models/elec/explain", json={"instance": instance, "version": 1}
        ).json()
        for item in api["contributions"]:
            assert f"{item['contribution']:+.4f}" in table
        assert [c["feature"] for c in api["contributions"]] == [name for _, name in shown]
        value = float(re.search(r"<strong>([^<]+)</strong>", body).group(1))  # type: ignore[union-attr]
        assert value == pytest.approx(api["value"], rel=1e-2)

        missing = client.get("/ui/models/elec/records/nope")
        assert missing.status_code == 404 and "no record &#39;nope&#39;" in missing.text
