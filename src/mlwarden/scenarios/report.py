"""The report of a simulation: performance over time with the faults shaded and actions marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from jinja2 import Template
from plotly.offline import get_plotlyjs

from mlwarden.scenarios.spec import Scenario


def performance_figure(scenario: Scenario, timeline: list[dict[str, Any]]) -> go.Figure:
    metric = timeline[0]["metric_name"] if timeline else "accuracy"
    windows = [w["index"] for w in timeline]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=windows,
            y=[w["metrics"].get(metric) for w in timeline],
            mode="lines+markers",
            name=f"{metric} (served)",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=windows,
            y=[w["baselines"].get("no_action") for w in timeline],
            mode="lines",
            name="doing nothing",
            line={"dash": "dot"},
        )
    )
    figure.add_trace(
        go.Scatter(
            x=windows,
            y=[w["baselines"].get("oracle") for w in timeline],
            mode="lines",
            name="oracle (no fault)",
            line={"dash": "dash"},
        )
    )
    estimated = [w["metrics"].get(f"estimated_{metric}") for w in timeline]
    if any(v is not None for v in estimated):
        figure.add_trace(
            go.Scatter(x=windows, y=estimated, mode="lines", name=f"estimated {metric}")
        )
    for fault in scenario.faults:
        first = fault.start / scenario.window - 0.5
        end = scenario.stream_length if fault.end is None else fault.end
        figure.add_vrect(
            x0=first,
            x1=end / scenario.window - 0.5,
            fillcolor="#d62728",
            opacity=0.12,
            line_width=0,
            annotation_text=fault.kind,
            annotation_position="top left",
        )
    for window in timeline:
        if not window["actions"]:
            continue
        figure.add_vline(x=window["index"], line_dash="dot", line_color="#2ca02c")
        figure.add_annotation(
            x=window["index"],
            y=1.02,
            yref="paper",
            showarrow=False,
            text=" + ".join(action["action"] for action in window["actions"]),
            font={"color": "#2ca02c"},
        )
    figure.update_layout(
        title=f"{scenario.name}: {metric} per window",
        xaxis_title="window",
        yaxis_title=metric,
        height=420,
        margin={"t": 60, "l": 60, "r": 20, "b": 40},
    )
    return figure


def markdown(scenario: Scenario, timeline: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = [f"# Simulation: {scenario.name}", "", scenario.description, ""]
    lines += ["## Faults", ""]
    lines += [
        f"- `{f.kind}` from record {f.start}"
        + (f" to {f.end}" if f.end else "")
        + (f" on `{f.feature}`" if f.feature else "")
        for f in scenario.faults
    ] or ["- none (clean control)"]
    lines += [
        "",
        "## Windows",
        "",
        "| window | metric | findings | incident | actions |",
        "|---|---|---|---|---|",
    ]
    for w in timeline:
        value = w["metrics"].get(w["metric_name"])
        metric = "—" if value is None else f"{value:.3f}"
        found = ", ".join(sorted({f["kind"] for f in w["findings"]})) or "—"
        incident = w["incident"]["state"] if w["incident"] else "—"
        acts = ", ".join(a["action"] for a in w["actions"]) or "—"
        lines.append(f"| {w['index']} | {metric} | {found} | {incident} | {acts} |")
    lines += ["", "## Actions", ""]
    lines += [
        f"- window {a['window']}: **{a['action']}** → {a['outcome']}" for a in summary["actions"]
    ] or ["- none"]
    score = summary.get("score") or {}
    if score.get("checks"):
        lines += ["", "## Expectations", ""]
        lines += [f"- {'PASS' if c['passed'] else 'FAIL'}: {c['expect']}" for c in score["checks"]]
    if score.get("harm"):
        lines += ["", "## Harm", "", harm_sentence(score["harm"])]
    return "\n".join(lines) + "\n"


_PAGE = Template(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>mlwarden simulation: {{ s.name }}</title>
<script>{{ plotly | safe }}</script>
<style>
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1.5rem auto; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
</style></head><body>
<h1>Simulation: {{ s.name }}</h1>
<p>{{ s.description }}</p>
<h2>Faults</h2>
<ul>{% for f in s.faults %}<li><code>{{ f.kind }}</code> from record {{ f.start }}
{%- if f.end %} to {{ f.end }}{% endif %}{% if f.feature %} on <code>{{ f.feature }}</code>
{%- endif %}</li>{% else %}<li>none (clean control)</li>{% endfor %}</ul>
{{ figure | safe }}
{% if score.checks %}<h2>Expectations</h2><ul>{% for c in score.checks %}
<li><span class="{{ 'pass' if c.passed else 'fail' }}">{{ 'PASS' if c.passed else 'FAIL' }}</span>
{{ c.expect }}</li>{% endfor %}</ul>{% endif %}
<h2>Recovery</h2>
<p>{{ r.metric }} over the fault periods: mlwarden {{ r.mlwarden }}, doing nothing
{{ r.no_action }}, oracle {{ r.oracle }}. False-alarm windows: {{ score.false_alarm_windows }}
of {{ score.clean_windows }} clean.</p>
{% if harm %}<p>{{ harm }}</p>{% endif %}
<h2>Actions</h2>
<table><tr><th>window</th><th>action</th><th>outcome</th></tr>
{% for a in summary.actions %}<tr><td>{{ a.window }}</td><td>{{ a.action }}</td>
<td>{{ a.outcome }}</td></tr>{% else %}<tr><td colspan="3">none</td></tr>{% endfor %}</table>
<h2>Windows</h2>
<table><tr><th>window</th><th>{{ metric }}</th><th>findings</th><th>incident</th>
<th>actions</th></tr>
{% for w in timeline %}<tr><td>{{ w.index }}</td>
<td>{{ "%.3f" | format(w.metrics[metric]) if w.metrics[metric] is not none else "-" }}</td>
<td>{{ w.findings | map(attribute="kind") | unique | join(", ") or "-" }}</td>
<td>{{ w.incident.state if w.incident else "-" }}</td>
<td>{{ w.actions | map(attribute="action") | join(", ") or "-" }}</td></tr>{% endfor %}
</table></body></html>
""",
    autoescape=True,
)


def harm_sentence(harm: dict[str, Any]) -> str:
    """One plain sentence: mlwarden against doing nothing, refused requests counted as errors."""
    periods = harm["fault_periods"]
    whole = harm["whole_stream"]
    verdict = (
        "worse than doing nothing"
        if harm["worse"]
        else "better than doing nothing"
        if harm["helped"]
        else "no better and no worse than doing nothing"
    )
    return (
        f"Harm: mlwarden served {verdict} (tolerance {harm['tolerance']}). {harm['metric']} "
        f"over the fault periods {periods['mlwarden']} vs {periods['no_action']} doing nothing; "
        f"over the whole stream {whole['mlwarden']} vs {whole['no_action']}. Refused and failed "
        "requests count as errors."
    )


def write_reports(
    out: Path, scenario: Scenario, timeline: list[dict[str, Any]], summary: dict[str, Any]
) -> None:
    """report.md and a self-contained report.html (Plotly inlined: it opens offline)."""
    (out / "report.md").write_text(markdown(scenario, timeline, summary))
    figure = performance_figure(scenario, timeline).to_html(full_html=False, include_plotlyjs=False)
    score = summary.get("score") or {}
    page = _PAGE.render(
        s=scenario,
        plotly=get_plotlyjs(),
        figure=figure,
        score=score,
        r=score.get("recovery") or {},
        harm=harm_sentence(score["harm"]) if score.get("harm") else "",
        summary=summary,
        timeline=timeline,
        metric=timeline[0]["metric_name"] if timeline else "accuracy",
    )
    (out / "report.html").write_text(page)
