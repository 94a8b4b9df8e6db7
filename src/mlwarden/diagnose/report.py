"""Incident report export: Markdown and self-contained HTML following the root-cause template.

Sections: symptom, impact, timeline, hypotheses, investigation, resolution. JSON is
``IncidentDiagnosis.to_json()``. The HTML has its CSS inline and no scripts, so it can be mailed or
attached to a ticket as one file.
"""

# Templates read better with their lines unbroken.
# ruff: noqa: E501
from __future__ import annotations

from jinja2 import Environment, select_autoescape
from pydantic import BaseModel

_MD = """\
# Incident report{% if d.model %}: {{ d.model }}{% endif %}

{% if d.generated_at %}_Generated {{ d.generated_at }}_

{% endif %}**Severity: {{ d.severity.value | upper }}**

{{ d.explanation }}

## Symptom
{% for s in d.symptoms %}- {{ s }}
{% else %}- (no findings)
{% endfor %}
## Impact
{% for s in d.impact %}- {{ s }}
{% endfor %}
## Timeline
{% if d.timeline %}| window | time | what | subject | detail |
|---|---|---|---|---|
{% for e in d.timeline %}| {{ e.window if e.window is not none else "" }} | {{ e.time or "" }} | {{ e.kind }} | {{ e.subject | md }} | {{ e.description | md }} |
{% endfor %}{% else %}No dated changes.
{% endif %}
## Hypotheses
{% for m in d.matches %}{{ loop.index }}. **{{ m.title }}** (`{{ m.id }}`, confidence {{ "%.2f" | format(m.confidence) }}, severity {{ m.severity.value }})
{% for e in m.evidence %}   - {{ e }}
{% endfor %}{% else %}No playbook matched.
{% endfor %}
## Investigation
### Culprit features
{% if d.culprits %}| feature | drift | source | importance | score |
|---|---|---|---|---|
{% for c in d.culprits %}| {{ c.feature }} | {{ "%.3g" | format(c.drift) }} | {{ c.drift_source | md }} | {{ "%.3g" | format(c.importance) if c.importance is not none else "" }} | {{ "%.3g" | format(c.score) }} |
{% endfor %}{% else %}None identified.
{% endif %}
### Segments
{% if d.segments %}| feature | slice | share now | share before | error now | error before | growth |
|---|---|---|---|---|---|---|
{% for s in d.segments %}| {{ s.feature }} | {{ s.value | md }} | {{ pct(s.window_share) }} | {{ pct(s.reference_share) }} | {{ pct(s.window_error) }} | {{ pct(s.reference_error) }} | {{ "%.4f" | format(s.growth) }} |
{% endfor %}{% else %}None identified.
{% endif %}
### Checks to run
{% for c in d.checks %}- **{{ c.title }}** ({{ c.kind }}): `{{ c.run }}`
{% else %}- Follow the generic triage checklist.
{% endfor %}
## Resolution
{% for a in d.actions %}- `{{ a.action }}`: {{ a.description }}
{% endfor %}{% if d.resolution %}
Done:
{% for r in d.resolution %}- {{ r }}
{% endfor %}{% endif %}{% if d.confirm %}
Confirm the fix:
{% for c in d.confirm %}- {{ c }}
{% endfor %}{% endif %}"""

_HTML = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Incident report{% if d.model %}: {{ d.model }}{% endif %}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#1f2328}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code{background:#f6f8fa;padding:.1rem .3rem;border-radius:4px;font-size:.85rem;word-break:break-all}
.sev{display:inline-block;padding:.2rem .6rem;border-radius:4px;color:#fff;font-weight:bold}
.sev-low{background:#1a7f37}.sev-medium{background:#9a6700}.sev-high{background:#cf222e}.sev-critical{background:#82071e}
.explanation{background:#f6f8fa;border-left:4px solid #0969da;padding:.6rem 1rem}
</style></head><body>
<h1>Incident report{% if d.model %}: {{ d.model }}{% endif %}</h1>
{% if d.generated_at %}<p><em>Generated {{ d.generated_at }}</em></p>{% endif %}
<p><span class="sev sev-{{ d.severity.value }}">{{ d.severity.value | upper }}</span></p>
<p class="explanation">{{ d.explanation }}</p>
<h2>Symptom</h2><ul>{% for s in d.symptoms %}<li>{{ s }}</li>{% else %}<li>(no findings)</li>{% endfor %}</ul>
<h2>Impact</h2><ul>{% for s in d.impact %}<li>{{ s }}</li>{% endfor %}</ul>
<h2>Timeline</h2>
{% if d.timeline %}<table><tr><th>window</th><th>time</th><th>what</th><th>subject</th><th>detail</th></tr>
{% for e in d.timeline %}<tr><td>{{ e.window if e.window is not none else "" }}</td><td>{{ e.time or "" }}</td><td>{{ e.kind }}</td><td>{{ e.subject }}</td><td>{{ e.description }}</td></tr>
{% endfor %}</table>{% else %}<p>No dated changes.</p>{% endif %}
<h2>Hypotheses</h2>
{% if d.matches %}<ol>{% for m in d.matches %}<li><strong>{{ m.title }}</strong> (<code>{{ m.id }}</code>, confidence {{ "%.2f" | format(m.confidence) }}, severity {{ m.severity.value }})
<ul>{% for e in m.evidence %}<li>{{ e }}</li>{% endfor %}</ul></li>{% endfor %}</ol>{% else %}<p>No playbook matched.</p>{% endif %}
<h2>Investigation</h2>
<h3>Culprit features</h3>
{% if d.culprits %}<table><tr><th>feature</th><th>drift</th><th>source</th><th>importance</th><th>score</th></tr>
{% for c in d.culprits %}<tr><td>{{ c.feature }}</td><td>{{ "%.3g" | format(c.drift) }}</td><td>{{ c.drift_source }}</td><td>{{ "%.3g" | format(c.importance) if c.importance is not none else "" }}</td><td>{{ "%.3g" | format(c.score) }}</td></tr>
{% endfor %}</table>{% else %}<p>None identified.</p>{% endif %}
<h3>Segments</h3>
{% if d.segments %}<table><tr><th>feature</th><th>slice</th><th>share now</th><th>share before</th><th>error now</th><th>error before</th><th>growth</th></tr>
{% for s in d.segments %}<tr><td>{{ s.feature }}</td><td>{{ s.value }}</td><td>{{ pct(s.window_share) }}</td><td>{{ pct(s.reference_share) }}</td><td>{{ pct(s.window_error) }}</td><td>{{ pct(s.reference_error) }}</td><td>{{ "%.4f" | format(s.growth) }}</td></tr>
{% endfor %}</table>{% else %}<p>None identified.</p>{% endif %}
<h3>Checks to run</h3>
<ul>{% for c in d.checks %}<li><strong>{{ c.title }}</strong> ({{ c.kind }}): <code>{{ c.run }}</code></li>{% else %}<li>Follow the generic triage checklist.</li>{% endfor %}</ul>
<h2>Resolution</h2>
<ul>{% for a in d.actions %}<li><code>{{ a.action }}</code>: {{ a.description }}</li>{% endfor %}</ul>
{% if d.resolution %}<p>Done:</p><ul>{% for r in d.resolution %}<li>{{ r }}</li>{% endfor %}</ul>{% endif %}
{% if d.confirm %}<p>Confirm the fix:</p><ul>{% for c in d.confirm %}<li>{{ c }}</li>{% endfor %}</ul>{% endif %}
</body></html>
"""


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v * 100:.1f}%"


def _md_cell(v: object) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _env(autoescape: bool) -> Environment:
    env = Environment(
        autoescape=select_autoescape(default=autoescape, default_for_string=autoescape),
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md_cell
    env.globals["pct"] = _pct
    return env


# ``d`` is an incident's diagnosis (``diagnose.incident``), which renders itself through these
# two: typed as any model here so that the templates' module does not import the diagnosis back.
def render_markdown(d: BaseModel) -> str:
    return _env(False).from_string(_MD).render(d=d)


def render_html(d: BaseModel) -> str:
    return _env(True).from_string(_HTML).render(d=d)
