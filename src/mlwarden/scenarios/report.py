"""The report of a simulation: performance over time with the faults shaded and actions marked."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from mlwarden.scenarios.spec import Scenario


def performance_figure(scenario: Scenario, timeline: list[dict[str, Any]]) -> go.Figure:
    metric = timeline[0]["metric_name"] if timeline else "accuracy"
    windows = [w["index"] for w in timeline]
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=windows, y=[w["metrics"].get(metric) for w in timeline],
                                mode="lines+markers", name=f"{metric} (served)"))
    figure.add_trace(go.Scatter(x=windows, y=[w["baselines"].get("no_action") for w in timeline],
                                mode="lines", name="doing nothing", line={"dash": "dot"}))
    figure.add_trace(go.Scatter(x=windows, y=[w["baselines"].get("oracle") for w in timeline],
                                mode="lines", name="oracle (no fault)", line={"dash": "dash"}))
    estimated = [w["metrics"].get(f"estimated_{metric}") for w in timeline]
    if any(v is not None for v in estimated):
        figure.add_trace(go.Scatter(x=windows, y=estimated, mode="lines", name=f"estimated {metric}"))
    for fault in scenario.faults:
        first = fault.start / scenario.window - 0.5
        end = scenario.stream_length if fault.end is None else fault.end
        figure.add_vrect(x0=first, x1=end / scenario.window - 0.5, fillcolor="#d62728", opacity=0.12,
                         line_width=0, annotation_text=fault.kind, annotation_position="top left")
    for window in timeline:
        for action in window["actions"]:
            figure.add_vline(x=window["index"], line_dash="dot", line_color="#2ca02c")
            figure.add_annotation(x=window["index"], y=1.02, yref="paper", showarrow=False,
                                  text=action["action"], font={"color": "#2ca02c"})
    figure.update_layout(title=f"{scenario.name}: {metric} per window", xaxis_title="window",
                         yaxis_title=metric, height=420, margin={"t": 60, "l": 60, "r": 20, "b": 40})
    return figure


def markdown(scenario: Scenario, timeline: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = [f"# Simulation: {scenario.name}", "", scenario.description, ""]
    lines += ["## Faults", ""]
    lines += [f"- `{f.kind}` from record {f.start}" + (f" to {f.end}" if f.end else "")
              + (f" on `{f.feature}`" if f.feature else "") for f in scenario.faults] or ["- none (clean control)"]
    lines += ["", "## Windows", "", "| window | metric | findings | incident | actions |", "|---|---|---|---|---|"]
    for w in timeline:
        value = w["metrics"].get(w["metric_name"])
        metric = "—" if value is None else f"{value:.3f}"
        found = ", ".join(sorted({f["kind"] for f in w["findings"]})) or "—"
        incident = w["incident"]["state"] if w["incident"] else "—"
        acts = ", ".join(a["action"] for a in w["actions"]) or "—"
        lines.append(f"| {w['index']} | {metric} | {found} | {incident} | {acts} |")
    lines += ["", "## Actions", ""]
    lines += [f"- window {a['window']}: **{a['action']}** → {a['outcome']}" for a in summary["actions"]] or ["- none"]
    score = summary.get("score") or {}
    if score.get("checks"):
        lines += ["", "## Expectations", ""]
        lines += [f"- {'PASS' if c['passed'] else 'FAIL'}: {c['expect']}" for c in score["checks"]]
    return "\n".join(lines) + "\n"


def write_reports(out: Path, scenario: Scenario, timeline: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    text = markdown(scenario, timeline, summary)
    (out / "report.md").write_text(text)
    figure = performance_figure(scenario, timeline).to_html(full_html=False, include_plotlyjs=False)
    body = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line and not line.startswith("|"))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>mlwarden simulation: {html.escape(scenario.name)}</title>"
        f"<script>{get_plotlyjs()}</script></head><body style='font-family:sans-serif;max-width:1100px;margin:auto'>"
        f"{figure}{body}</body></html>"
    )
    (out / "report.html").write_text(page)
