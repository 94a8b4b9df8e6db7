"""What the dashboard's pages show, from the rows ``store.dashboard`` reads (nothing here
queries or writes): the fleet overview with each model's health, the model page's charts.
The overview reads only the last :data:`SPARK_WINDOWS` windows of a handful of key signals,
so its cost does not grow with the length of the signal history.

Signal names are grouped into charts by :func:`signal_group`; names nobody planned for still
show, in the "other signals" table of the model page.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from mlwarden.clock import as_utc
from mlwarden.domain import Severity
from mlwarden.store import Store, dashboard

__all__ = [
    "HEALTH_LABELS",
    "ModelRow",
    "chart_markers",
    "feature_distribution",
    "fleet",
    "health_counts",
    "health_of",
    "metric_panels",
    "model_signals",
    "signal_group",
]

SPARK_WINDOWS = 30
# the models whose spark windows one statement reads (one OR term each)
MODELS_PER_READ = 200

# the first of these a model has is its headline performance number
PERFORMANCE_SIGNALS = ("accuracy", "f1", "roc_auc", "precision", "recall", "r2", "rmse", "mae")
ESTIMATED_PREFIXES = ("estimated.", "estimated_", "est.")
LATENCY_SIGNAL = "latency_p99_ms"
ERROR_SIGNAL = "error_rate"
KEY_SIGNALS = (
    *PERFORMANCE_SIGNALS,
    *(p + "accuracy" for p in ESTIMATED_PREFIXES),
    LATENCY_SIGNAL,
    ERROR_SIGNAL,
)
DRIFT_STATS = ("psi", "jensen_shannon", "wasserstein_std", "ks")
HEADLINE_SIGNALS = (*PERFORMANCE_SIGNALS, LATENCY_SIGNAL, ERROR_SIGNAL, "throughput_per_s")

HEALTH_LABELS = {
    "healthy": "Healthy",
    "degraded": "Degraded",
    "failing": "Failing",
    "disabled": "Disabled",
    "unknown": "No data yet",
}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass
class ModelRow:
    """One line of the fleet overview."""

    name: str
    task: str
    monitoring: bool
    live_version: int | None = None
    disabled: bool = False
    revision: int | None = None
    incidents: list[dict[str, Any]] = field(default_factory=list)
    last_window: int | None = None
    last_ts: datetime | None = None
    latest: dict[str, float | None] = field(default_factory=dict)
    series: dict[str, list[float | None]] = field(default_factory=dict)
    findings_last_window: int = 0
    status: str = "unknown"
    reason: str = ""

    @property
    def worst_severity(self) -> str | None:
        if not self.incidents:
            return None
        worst = Severity.worst(i["severity"] for i in self.incidents)
        return None if worst is None else worst.value

    @property
    def performance_name(self) -> str | None:
        return next((n for n in KEY_SIGNALS[:-2] if n in self.latest), None)

    def public(self) -> dict[str, Any]:
        """The JSON the overview's live updates read."""
        perf = self.performance_name
        return {
            "name": self.name,
            "status": self.status,
            "status_label": HEALTH_LABELS[self.status],
            "reason": self.reason,
            "live_version": self.live_version,
            "open_incidents": len(self.incidents),
            "worst_severity": self.worst_severity,
            "newest_incident": self.incidents[0]["id"] if self.incidents else None,
            "last_window": self.last_window,
            "last_ts": None if self.last_ts is None else self.last_ts.isoformat(),
            "performance_name": perf,
            "performance": None if perf is None else self.latest.get(perf),
            "latency_p99_ms": self.latest.get(LATENCY_SIGNAL),
            "error_rate": self.latest.get(ERROR_SIGNAL),
            "monitoring": self.monitoring,
        }


def health_of(row: ModelRow) -> tuple[str, str]:
    """(status, why) from the deployment's disabled flag, open incidents and the latest window.

    disabled beats everything; a high/critical open incident or an error rate of half the
    traffic in the latest window is *failing*; any other open incident, or findings in the latest
    window, is *degraded*; a model without any window yet is *unknown*.
    """
    if row.disabled:
        return "disabled", "the deployment is disabled: requests get the default response"
    worst = row.worst_severity
    if worst is not None and Severity(worst).at_least(Severity.HIGH):
        return "failing", f"{len(row.incidents)} open incident(s), worst severity {worst}"
    error_rate = row.latest.get(ERROR_SIGNAL)
    if error_rate is not None and error_rate >= 0.5:
        return "failing", f"error rate {error_rate:.0%} in window {row.last_window}"
    if row.incidents:
        return "degraded", f"{len(row.incidents)} open incident(s), worst severity {worst}"
    if row.findings_last_window:
        return "degraded", f"{row.findings_last_window} finding(s) in window {row.last_window}"
    if row.last_window is None:
        return "unknown", "no window closed yet: send predictions and start monitoring"
    return "healthy", f"no open incident; last window {row.last_window}"


def health_counts(rows: Iterable[ModelRow]) -> dict[str, int]:
    """How many models are in each health state (the overview's tiles)."""
    counts = dict.fromkeys(HEALTH_LABELS, 0)
    for row in rows:
        counts[row.status] += 1
    return counts


# Each model's series and latest values by the identity of the points they were built from:
# ``dashboard.fleet`` hands back the same points until a window closes, and building 1,000
# models' series again was most of a view's remaining cost (docs/benchmarks.md, "A fleet").
# Only the last view's entries are kept; read-only for the pages.
_SERIES: dict[int, tuple[list[Any], dict[str, list[float | None]], dict[str, float | None]]] = {}


def fleet(store: Store) -> list[ModelRow]:
    """Every model with its deployment, open incidents, latest window and key-metric series."""
    out = []
    built = {}
    for found in dashboard.fleet(store, KEY_SIGNALS, SPARK_WINDOWS, MODELS_PER_READ):
        row = ModelRow(
            found.name,
            found.task,
            found.monitoring,
            live_version=found.live_version,
            disabled=found.disabled,
            revision=found.revision,
            incidents=found.incidents,
            last_window=found.last_window,
            last_ts=found.last_ts,
            findings_last_window=found.findings_last_window,
        )
        held = _SERIES.get(id(found.points))
        if held is None or held[0] is not found.points:
            held = (found.points, *_series(found.points, found.last_window))
        built[id(found.points)] = held
        row.series, row.latest = held[1], held[2]
        row.status, row.reason = health_of(row)
        out.append(row)
    _SERIES.clear()
    _SERIES.update(built)
    return out


def _series(
    points: Sequence[dashboard.SparkPoint], last_window: int | None
) -> tuple[dict[str, list[float | None]], dict[str, float | None]]:
    """A model's values by signal, one per window (None where a window lacks it), and its
    last window's."""
    windows = sorted({p.window for p in points})
    position = {w: k for k, w in enumerate(windows)}
    series: dict[str, list[float | None]] = {}
    latest: dict[str, float | None] = {}
    for p in points:
        series.setdefault(p.name, [None] * len(windows))[position[p.window]] = _finite(p.value)
        if p.window == last_window:
            latest[p.name] = _finite(p.value)
    return series, latest


# ---------------------------------------------------------------------------- the model page

_GROUPS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # the bounds of a metric's confidence interval: drawn as that metric's band
    ("interval", re.compile(r"_ci_(low|high)$")),
    ("drift", re.compile(r"^drift\.")),
    ("estimated", re.compile(r"^(estimated[._]|est\.)")),
    (
        "performance",
        re.compile(r"^(accuracy|precision|recall|f1|roc_auc|r2|rmse|mae|log_loss|ece)$"),
    ),
    ("latency", re.compile(r"^latency_")),
    ("errors", re.compile(r"^error_rate$")),
    ("throughput", re.compile(r"^(throughput_per_s|records|n_records|rows|error_count)$")),
    ("confidence", re.compile(r"(confidence|^score[._](mean|p50|median))")),
    ("prediction", re.compile(r"^(prediction|pred|class_share|positive_rate)")),
    ("quality", re.compile(r"(null|invalid|out_of_range|unseen|missing|quality|schema)")),
)


def signal_group(name: str) -> str:
    """The chart a signal belongs to on the model page (``other`` when none fits)."""
    for group, pattern in _GROUPS:
        if pattern.search(name):
            return group
    return "other"


@dataclass
class ModelSignals:
    """The recent signal history of one model, arranged for charts."""

    windows: list[int]
    times: list[str]
    series: dict[str, list[float | None]]
    groups: dict[str, list[str]]
    heatmap: dict[str, Any]
    quality: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "times": self.times,
            "series": self.series,
            "groups": self.groups,
            "heatmap": self.heatmap,
            "quality": self.quality,
            "metrics": self.metrics,
        }


def model_signals(store: Store, model_id: int, limit: int = 200) -> ModelSignals:
    """The last ``limit`` windows of every signal of a model (oldest first)."""
    points = dashboard.last_windows(store, model_id, limit)
    windows = sorted({p.window for p in points})
    position = {w: k for k, w in enumerate(windows)}
    times: list[str] = [""] * len(windows)
    series: dict[str, list[float | None]] = {}
    for p in points:
        k = position[p.window]
        if not times[k]:  # every signal of a window carries its end time: format it once
            times[k] = as_utc(p.ts).isoformat()
        series.setdefault(p.name, [None] * len(windows))[k] = _finite(p.value)
    series.pop("window.closed", None)  # the agent's bookkeeping marker, not a measurement
    groups: dict[str, list[str]] = {}
    # the headline series of a chart comes first: it owns the left axis
    for name in sorted(series, key=lambda n: (n not in HEADLINE_SIGNALS, n)):
        groups.setdefault(signal_group(name), []).append(name)
    return ModelSignals(
        windows,
        times,
        series,
        groups,
        _heatmap(groups.get("drift", []), series),
        _quality_heatmap(groups.get("quality", []), series),
        metric_panels(series),
    )


# the bounds of a metric's interval as the monitor stores them (monitor.engine)
CI_LOW, CI_HIGH = "_ci_low", "_ci_high"
ESTIMATED = "estimated_"
METRIC_ORDER = (*PERFORMANCE_SIGNALS, "log_loss", "ece")


def metric_panels(series: Mapping[str, list[float | None]]) -> list[dict[str, Any]]:
    """One chart per performance metric: the measured series and the estimated one (CBPE, before
    labels arrive), each with the names of its interval's bounds when stored; headline first.

    >>> names = ["accuracy", "accuracy_ci_low", "accuracy_ci_high", "estimated_accuracy", "f1"]
    >>> [p["metric"] for p in metric_panels({n: [0.9] for n in names})]
    ['accuracy', 'f1']
    >>> metric_panels({n: [0.9] for n in names})[0]["band"]
    ['accuracy_ci_low', 'accuracy_ci_high']
    """
    measured = {n for n in series if signal_group(n) == "performance"}
    estimated = {n[len(ESTIMATED) :] for n in series if n.startswith(ESTIMATED)}
    metrics = sorted(
        {n for n in measured | estimated if CI_LOW not in n and CI_HIGH not in n},
        key=lambda m: (METRIC_ORDER.index(m) if m in METRIC_ORDER else len(METRIC_ORDER), m),
    )

    def band(name: str) -> list[str] | None:
        low, high = name + CI_LOW, name + CI_HIGH
        return [low, high] if low in series and high in series else None

    panels = []
    for metric in metrics:
        est = ESTIMATED + metric
        panels.append(
            {
                "metric": metric,
                "measured": metric if metric in series else None,
                "band": band(metric),
                "estimated": est if est in series else None,
                "estimated_band": band(est),
            }
        )
    return panels


def _heatmap(names: Sequence[str], series: Mapping[str, list[float | None]]) -> dict[str, Any]:
    """Features x windows of one drift statistic (the first of :data:`DRIFT_STATS` present)."""
    by_stat: dict[str, dict[str, str]] = {}
    for name in names:
        parts = name.split(".", 2)
        if len(parts) == 3:
            by_stat.setdefault(parts[1], {})[parts[2]] = name
    stat = next((st for st in DRIFT_STATS if st in by_stat), next(iter(by_stat), None))
    if stat is None:
        return {"stat": None, "features": [], "z": []}
    features = sorted(by_stat[stat])
    return {
        "stat": stat,
        "features": features,
        "z": [series[by_stat[stat][feat]] for feat in features],
    }


MARKERS_PER_KIND = 100


def chart_markers(store: Store, model_id: int, since: datetime | None) -> list[dict[str, Any]]:
    """What happened to a model since ``since``, to mark on its charts (oldest first):
    deployment revisions (``deploy``), incidents opened (``incident``) and agent actions
    (``action``), each with its time, a one-line label and the incident it belongs to, if any;
    the newest :data:`MARKERS_PER_KIND` of each kind."""
    events = dashboard.chart_events(store, model_id, since, MARKERS_PER_KIND)
    out: list[dict[str, Any]] = []
    for r in events.deploys:
        serving = "disabled" if r.disabled else f"live v{r.live_version}"
        if r.canary_version:
            serving += f", canary v{r.canary_version}"
        if r.fallback_version:
            serving += f", fallback v{r.fallback_version}"
        out.append(
            {
                "kind": "deploy",
                "ts": as_utc(r.created_at).isoformat(),
                "incident_id": None,
                "label": f"revision {r.revision} by {r.actor}: {serving}"
                + (f" ({r.reason})" if r.reason else ""),
            }
        )
    for r in events.incidents:
        what = r.diagnosis or r.scope or "incident"
        out.append(
            {
                "kind": "incident",
                "ts": as_utc(r.opened_at).isoformat(),
                "incident_id": r.id,
                "label": f"incident #{r.id} opened: {what}, {r.severity} (now {r.state})",
            }
        )
    for r in events.actions:
        out.append(
            {
                "kind": "action",
                "ts": as_utc(r.created_at).isoformat(),
                "incident_id": r.incident_id,
                "label": f"action {r.id}: {r.kind} by {r.actor} ({r.state})"
                + ("" if r.incident_id is None else f", incident #{r.incident_id}"),
            }
        )
    out.sort(key=lambda m: m["ts"])
    return out


QUALITY_RATES = ("null_rate", "invalid_rate", "unseen_rate")


def _quality_heatmap(
    names: Sequence[str], series: Mapping[str, list[float | None]]
) -> dict[str, Any]:
    """Features x windows of the worst data-quality rate (share of rows null, invalid or of an
    unseen category), with each rate in the hover text: a null burst is a bright row here even
    when the drift statistics hardly move (nulls are left out of them)."""
    by_feature: dict[str, dict[str, list[float | None]]] = {}
    for name in names:
        rate, _, feature = name.partition(".")
        if rate in QUALITY_RATES and feature:
            by_feature.setdefault(feature, {})[rate] = series[name]
    features = sorted(by_feature)
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for feature in features:
        rates = by_feature[feature]
        width = len(next(iter(rates.values())))
        row: list[float | None] = []
        hover: list[str] = []
        for k in range(width):
            present = {r: x for r, v in rates.items() if (x := v[k]) is not None}
            row.append(max(present.values()) if present else None)
            hover.append(
                "<br>".join(f"{r.replace('_', ' ')} {v:.1%}" for r, v in sorted(present.items()))
            )
        z.append(row)
        text.append(hover)
    return {"features": features, "z": z, "text": text}


def signals_export(store: Store, model_id: int, limit: int = 100_000) -> list[dict[str, Any]]:
    """Signal rows (long format: window, ts, name, value), oldest first, for CSV/JSON export."""
    rows = [
        {"window": r.window, "ts": r.ts.isoformat(), "name": r.name, "value": r.value}
        for r in dashboard.newest_signals(store, model_id, limit)
    ]
    rows.reverse()
    return rows


def feature_distribution(
    reference: Iterable[Mapping[str, Any]] | None,
    recent: Iterable[Mapping[str, Any]],
    feature: str,
    bins: int = 20,
    text: bool = False,
) -> dict[str, Any]:
    """Histograms of one feature in the reference sample and in recent records, on shared bins.

    Numeric features share equal-width bins over both samples' range; a text feature (``text``:
    declared ``FeatureType.TEXT``) is summarised as the monitor summarises it
    (``text_distribution``); anything else is counted per value (the 30 most frequent).
    Frequencies are shares of each sample, so samples of very different sizes compare.
    """
    ref_values = [r.get(feature) for r in reference or []]
    new_values = [r.get(feature) for r in recent]
    present = [v for v in ref_values + new_values if v is not None]
    numeric = bool(present) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in present
    )
    out: dict[str, Any] = {
        "feature": feature,
        "reference_n": len(ref_values),
        "recent_n": len(new_values),
        "reference_nulls": sum(v is None for v in ref_values),
        "recent_nulls": sum(v is None for v in new_values),
    }
    if text:
        return out | text_distribution(ref_values, new_values)
    if numeric:
        ref = np.array([v for v in ref_values if v is not None], dtype=float)
        new = np.array([v for v in new_values if v is not None], dtype=float)
        both = np.concatenate([ref, new])
        both = both[np.isfinite(both)]
        lo, hi = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        out["kind"] = "numeric"
        out["x"] = [round(float(v), 6) for v in (edges[:-1] + edges[1:]) / 2]
        out["reference"] = _shares(np.histogram(ref, edges)[0])
        out["recent"] = _shares(np.histogram(new, edges)[0])
        return out
    counts: dict[str, list[int]] = {}
    for k, values in enumerate((ref_values, new_values)):
        for v in values:
            if v is not None:
                counts.setdefault(str(v), [0, 0])[k] += 1
    top = sorted(counts, key=lambda v: -sum(counts[v]))[:30]
    out["kind"] = "categorical"
    out["x"] = top
    out["reference"] = _shares(np.array([counts[v][0] for v in top]))
    out["recent"] = _shares(np.array([counts[v][1] for v in top]))
    return out


def text_distribution(ref_values: list[Any], new_values: list[Any]) -> dict[str, Any]:
    """A free-text feature as the monitor compares it (``stats.text``), not as its values: every
    name or comment is distinct, so a list of its most frequent values says nothing.

    The length histogram of both samples on the reference's bins (``TextLayout``), the empty
    rate and the share of unknown (out-of-vocabulary) words of each, the reference's own share
    measured out of sample as the detector does, and the shares of the reference's most
    frequent words. Without a reference sample the layout is fitted on the recent records.
    """
    from mlwarden.stats.text import TextLayout, TextStats

    layout = TextLayout.fit(ref_values if ref_values else new_values)
    ref = TextStats.reference(layout, ref_values, len(ref_values))
    new = TextStats.of(layout, new_values, len(new_values))
    # lengths are whole characters: bin [lo, hi) holds ceil(lo) .. ceil(hi) - 1
    edges = [math.ceil(float(e)) for e in layout.length_edges]
    labels = (
        [f"< {edges[0]}"]
        + [f"{lo}" if hi - 1 <= lo else f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(edges)]
        + [f"≥ {edges[-1]}"]
        if edges
        else ["all"]
    )
    words = [t for t, _ in ref.top_shares(10)]
    index = layout.index

    def word_shares(stats: TextStats) -> list[float]:
        total = stats.checked
        return [round(float(stats.top[index[w]]) / total, 6) if total else 0.0 for w in words]

    def rates(stats: TextStats) -> dict[str, float | None]:
        return {
            "empty_rate": round(stats.empty / stats.count, 6) if stats.count else None,
            "oov_rate": round(stats.oov_rate, 6) if stats.checked else None,
            "mean_length": round(stats.mean_length, 3) if stats.count else None,
        }

    return {
        "kind": "text",
        "x": labels,
        "reference": _shares(ref.length_hist),
        "recent": _shares(new.length_hist),
        "rates": {"reference": rates(ref), "recent": rates(new)},
        "words": {"x": words, "reference": word_shares(ref), "recent": word_shares(new)},
    }


def _shares(counts: np.ndarray) -> list[float]:
    total = float(counts.sum())
    return [round(float(c) / total, 6) if total else 0.0 for c in counts]
