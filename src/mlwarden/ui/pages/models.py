"""A model's page: deployment, monitoring, charts of its signals, feature distributions,
incidents, versions (compare two, deploy one) and the deployment history with undo."""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from mlwarden.api.deps import ServerState, server
from mlwarden.domain import FeatureType
from mlwarden.errors import InvalidInput, NotFound
from mlwarden.ui import queries
from mlwarden.ui.session import Session
from mlwarden.ui.web import (
    PREFIX,
    api_session,
    back,
    compressed,
    error_page,
    operator_change,
    page_router,
    page_session,
    render,
)

router = page_router()


def _model_live(state: ServerState, name: str) -> dict[str, Any]:
    """What the model page's charts and live updates read."""
    model_id = state.store.model_id(name)
    deployment = state.store.get_deployment(name)
    signals = queries.model_signals(state.store, model_id)
    data = signals.public()
    data["deployment"] = None if deployment is None else deployment.model_dump(mode="json")
    data["monitoring"] = state.store.is_monitored(name)
    data["reference"] = _reference_levels(state, name, deployment)
    markers = queries.chart_markers(state.store, model_id, _charts_start(signals.times))
    for marker in markers:
        found = marker.pop("incident_id")
        marker["url"] = None if found is None else f"{PREFIX}/incidents/{found}"
    data["markers"] = markers
    return data


def _charts_start(times: list[str]) -> datetime | None:
    """When the first charted window began, about: its end less the spacing of windows (so a
    deployment just before the first window is still marked)."""
    if not times:
        return None
    first = datetime.fromisoformat(times[0])
    if len(times) < 2:
        return first - timedelta(hours=1)
    span = (datetime.fromisoformat(times[-1]) - first) / (len(times) - 1)
    return first - span


def _reference_levels(state: ServerState, name: str, deployment: Any) -> dict[str, Any]:
    """The live version's metrics on its reference (holdout) sample, as registered: the level
    each performance chart draws its horizontal line at."""
    if deployment is None or deployment.live_version is None:
        return {"version": None, "metrics": {}}
    version = state.store.get_version(name, deployment.live_version)
    metrics = {
        k: float(v)
        for k, v in (version.training_metrics or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    return {"version": deployment.live_version, "metrics": metrics}


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(
    request: Request,
    name: str,
    msg: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    try:
        spec = state.store.get_model(name)
    except NotFound as exc:
        return error_page(request, session, exc)
    from mlwarden.store.incidents import AgentRepo

    live = _model_live(state, name)
    return render(
        request,
        session,
        "model.html",
        spec=spec,
        name=name,
        live=live,
        msg=msg,
        versions=state.store.list_versions(name),
        history=state.store.deployment_history(name, limit=50),
        deployment=state.store.get_deployment(name),
        incidents=AgentRepo(state.store).list_incidents(model=name, limit=20),
    )


@router.get("/live/models/{name}")
def live_model(
    request: Request,
    name: str,
    session: Session = Depends(api_session),
    state: ServerState = Depends(server),
) -> Response:
    return compressed(
        request, JSONResponse(_model_live(state, name), headers={"Cache-Control": "no-store"})
    )


@router.get("/models/{name}/signals.{fmt}")
def export_signals(
    name: str,
    fmt: str,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    if fmt not in ("csv", "json"):
        raise InvalidInput(f"export format must be csv or json, not {fmt!r}")
    rows = queries.signals_export(state.store, state.store.model_id(name))
    disposition = {"Content-Disposition": f'attachment; filename="{name}-signals.{fmt}"'}
    if fmt == "json":
        return JSONResponse(rows, headers=disposition)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["window", "ts", "name", "value"])
    writer.writeheader()
    writer.writerows(rows)
    return PlainTextResponse(buffer.getvalue(), media_type="text/csv", headers=disposition)


@router.get("/models/{name}/features/{feature}", response_class=HTMLResponse)
def feature_page(
    request: Request,
    name: str,
    feature: str,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    try:
        spec = state.store.get_model(name)
    except NotFound as exc:
        return error_page(request, session, exc)
    declared = {f.name: f.type for f in spec.features}
    if feature not in declared:
        return error_page(request, session, NotFound(f"model {name!r} has no feature {feature!r}"))
    deployment = state.store.get_deployment(name)
    reference = None
    if deployment is not None and deployment.live_version is not None:
        reference = state.store.reference_sample(name, deployment.live_version)
    recent = [
        r["features"] for r in state.store.fetch_records(name, limit=2_000, newest_first=True)
    ]
    dist = queries.feature_distribution(
        reference, recent, feature, text=declared[feature] == FeatureType.TEXT
    )
    return render(request, session, "feature.html", name=name, feature=feature, dist=dist)


@router.post("/models/{name}/monitoring")
def set_monitoring(
    request: Request,
    name: str,
    on: str = Form(...),
    csrf: str = Form(""),
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    operator_change(request, session, csrf)
    enabled = on == "1"
    state.store.set_monitoring(name, enabled, actor=session.name)
    state.store.audit(session.name, "model.monitoring", name, {"monitoring": enabled})
    return back(
        request,
        f"{PREFIX}/models/{quote(name)}",
        "Monitoring started." if enabled else "Monitoring stopped.",
    )


@router.post("/models/{name}/undo")
def undo_deployment(
    request: Request,
    name: str,
    revision: int = Form(...),
    reason: str = Form(""),
    csrf: str = Form(""),
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    operator_change(request, session, csrf)
    after = state.operations(session.name).undo_revision(
        name, revision, reason=reason.strip() or f"undo to revision {revision} from the dashboard"
    )
    return back(
        request,
        f"{PREFIX}/models/{quote(name)}",
        f"Revision {revision} restored as revision {after.revision}.",
    )


SERVED_RECORDS = 2_000  # newest records of each version scored on the compare page


def _served(state: ServerState, name: str, task: Any, number: int) -> dict[str, Any]:
    """What ``number`` did in production: its newest served records, how many are labelled, and
    the task's metrics (with their 95 % intervals) on those."""
    from mlwarden.domain import Task
    from mlwarden.stats.performance import classification_metrics, regression_metrics

    records = state.store.fetch_records(
        name, version=number, limit=SERVED_RECORDS, newest_first=True
    )
    labelled = [r for r in records if r.get("label") is not None]
    metrics: dict[str, Any] = {}
    if labelled:
        truth = [r["label"] for r in labelled]
        said = [r["prediction"] for r in labelled]
        if task == Task.REGRESSION:
            found = regression_metrics(truth, said, resamples=200)
        else:
            found = classification_metrics(truth, said, resamples=200)
        metrics = {k: m for k, m in found.items() if m.value is not None}
    return {"records": len(records), "labelled": len(labelled), "metrics": metrics}


@router.get("/models/{name}/compare", response_class=HTMLResponse)
def compare_versions(
    request: Request,
    name: str,
    a: int | None = None,
    b: int | None = None,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    """Two versions side by side: registration, metrics on their holdout, and what each did on
    the traffic it served (the newest records with labels). By default the live version and
    the newest other one."""
    try:
        spec = state.store.get_model(name)
        versions = {v.number: v for v in state.store.list_versions(name)}
        deployment = state.store.get_deployment(name)
        live = deployment.live_version if deployment is not None else None
        others = sorted((n for n in versions if n != live), reverse=True)
        first = a if a is not None else (live if live is not None else max(versions, default=None))
        second = b if b is not None else next((n for n in others if n != first), None)
        for number in (first, second):
            if number is None or number not in versions:
                raise NotFound(
                    f"model {name!r} has no version {number}: "
                    f"it has {', '.join(f'v{n}' for n in sorted(versions)) or 'none'}"
                    if number is not None
                    else f"model {name!r} needs two versions to compare"
                )
    except NotFound as exc:
        return error_page(request, session, exc)
    assert first is not None and second is not None
    pair = [versions[first], versions[second]]
    served = [_served(state, name, spec.task, v.number) for v in pair]
    training = sorted(set(pair[0].training_metrics or {}) | set(pair[1].training_metrics or {}))
    production = sorted(set(served[0]["metrics"]) | set(served[1]["metrics"]))
    return render(
        request,
        session,
        "compare.html",
        name=name,
        pair=pair,
        served=served,
        training=training,
        production=production,
        live=live,
        numbers=sorted(versions),
    )


@router.post("/models/{name}/versions/{number}/deploy")
def deploy_version(
    request: Request,
    name: str,
    number: int,
    reason: str = Form(""),
    csrf: str = Form(""),
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    """Make ``number`` the live version: the API's ``PATCH .../deployment`` with
    ``live_version`` (a new revision, an event and an audit entry by the signed-in operator)."""
    from mlwarden.api.routes_deploy import change_deployment

    operator_change(request, session, csrf)
    target = f"{PREFIX}/models/{quote(name)}"
    try:
        state.store.get_version(name, number)  # an unknown version: a clear page, no revision
        after = change_deployment(
            state,
            name,
            {"live_version": number},
            actor=session.name,
            reason=reason.strip() or f"deploy v{number} from the dashboard",
        )
    except (InvalidInput, NotFound) as exc:
        return error_page(request, session, exc)
    return back(request, target, f"v{number} is live (revision {after.revision}).")
