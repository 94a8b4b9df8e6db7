"""Backtest: run every detector over historical logs, window by window, as if live.

Reads a reference and a stream (CSV or Parquet) with the column conventions of
:class:`~mlwarden.stats.profile.Columns` (``id``, ``timestamp``, ``prediction``, ``score`` or
``proba_<class>``, ``label``, ``latency_ms``, ``error``; every other column is a feature), joins
labels from a separate file by ``id`` when given, cuts the stream into windows, runs the
:class:`~mlwarden.monitor.engine.Monitor` on each, and writes ``findings.json``, ``report.md``
and ``report.html`` (Plotly figures with plotly.js inlined, so the file works offline).

The policy file (``--policy``) is YAML. Its detection thresholds are read from a ``detection:``
section or from the top level; the keys are the fields of
:class:`~mlwarden.monitor.config.MonitorConfig` (``drift_alpha``, ``drift_wasserstein``,
``drift_psi``, ``drift_jensen_shannon``, ``multivariate``, ``performance_tolerance``,
``min_labels``, ``streaming``, ``latency_slo_ms``, ``latency_ratio``, ``error_min_increase``,
``throughput_ratio``, ``max_delay_s``, ``anomaly``, ``rules`` ...). Other keys (for the agent:
``defaults``, ``models`` ...) are ignored with a warning.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlwarden.domain import Finding
from mlwarden.errors import InvalidInput
from mlwarden.monitor.engine import Monitor, MonitorConfig, WindowResult
from mlwarden.monitor.window import WindowSpec, iter_windows
from mlwarden.stats.profile import Columns

__all__ = ["BacktestResult", "load_detection_policy", "read_table", "run_backtest", "write_outputs"]

# Sections whose keys are read as detection settings; any other key is a setting itself.
_SECTIONS = ("detection", "thresholds")


@dataclass
class BacktestResult:
    """Every window's result, and the findings flattened in stream order."""

    windows: list[WindowResult]
    findings: list[Finding]
    warnings: list[str] = field(default_factory=list)
    window: str = ""

    def summary(self) -> dict[str, Any]:
        kinds = Counter(f.kind.value for f in self.findings)
        flagged = sorted({f.window for f in self.findings if f.window is not None})
        return {
            "windows": len(self.windows),
            "records": sum(w.n for w in self.windows),
            "labelled": sum(w.labelled for w in self.windows),
            "window": self.window,
            "findings": len(self.findings),
            "by_kind": dict(sorted(kinds.items())),
            "windows_with_findings": flagged,
            "first_finding_window": flagged[0] if flagged else None,
            "warnings": self.warnings,
        }


def read_table(path: str | Path, what: str) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame, with an error naming the file when it cannot."""
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"{what} file not found: {p}")
    if p.is_dir():
        raise InvalidInput(f"{what} path is a folder, not a file: {p}")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", low_memory=False)
    except Exception as exc:
        raise InvalidInput(f"cannot read {what} file {p}: {exc}") from exc
    raise InvalidInput(f"{what} file {p} must be .csv or .parquet (got {suffix or 'no suffix'})")


def load_detection_policy(path: str | Path) -> tuple[MonitorConfig, list[str]]:
    """Detection thresholds from a YAML policy; returns the config and warnings."""
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"policy file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"policy file {p} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"policy file {p} must hold a mapping of settings")
    settings: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise InvalidInput(f"policy section {key!r} must be a mapping")
            settings.update(value)
        else:
            settings[key] = value
    config, unknown = MonitorConfig.from_mapping(settings)
    ignored += unknown
    warnings = [f"policy key {k!r} is not a detection setting: ignored" for k in ignored]
    return config, warnings


def run_backtest(
    reference: pd.DataFrame,
    stream: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    window: WindowSpec | None = None,
    columns: Columns | None = None,
    config: MonitorConfig | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> BacktestResult:
    """Monitor ``stream`` window by window against ``reference``; labels joined by id."""
    cols = columns or Columns()
    spec = window or WindowSpec(size=1000)
    warnings: list[str] = []
    features = [c for c in reference.columns if not cols.is_reserved(str(c))]
    if not features:
        raise InvalidInput(
            "the reference has no feature column (every column is a reserved "
            f"one: {', '.join(map(str, reference.columns))})"
        )
    if len(stream) == 0:
        raise InvalidInput("the stream file has no rows")
    missing = [f for f in features if f not in stream.columns]
    if len(missing) == len(features):
        raise InvalidInput(f"the stream has none of the reference's features: {features}")
    if missing:
        warnings.append(f"stream lacks reference features {missing}: reported as data quality")
    if labels is not None:
        stream = _join_labels(stream, labels, cols, warnings)
    if spec.duration is not None:
        if cols.timestamp not in stream.columns:
            raise InvalidInput(
                f"--window {spec.describe()} needs the timestamp column "
                f"{cols.timestamp!r} in the stream"
            )
    elif cols.timestamp in stream.columns:
        stamps = pd.to_datetime(stream[cols.timestamp], utc=True, errors="coerce", format="mixed")
        if stamps.notna().all() and not stamps.is_monotonic_increasing:
            stream = stream.iloc[stamps.argsort(kind="stable")]
            warnings.append("stream was not in time order: sorted by timestamp")
    monitor = Monitor(reference, config=config, columns=cols)
    total = -(-len(stream) // spec.size) if spec.size else None
    results: list[WindowResult] = []
    for index, rows in iter_windows(stream, spec, cols.timestamp):
        results.append(monitor.process(rows, index=index))
        if progress is not None:
            progress(index + 1, total)
    findings = [f for r in results for f in r.findings]
    return BacktestResult(results, findings, warnings, spec.describe())


def _join_labels(
    stream: pd.DataFrame, labels: pd.DataFrame, cols: Columns, warnings: list[str]
) -> pd.DataFrame:
    for name, frame in (("stream", stream), ("labels", labels)):
        if cols.id not in frame.columns:
            raise InvalidInput(f"joining labels needs the id column {cols.id!r} in the {name} file")
    if cols.label not in labels.columns:
        raise InvalidInput(f"the labels file has no label column {cols.label!r}")
    table = labels[[cols.id, cols.label]].copy()
    table[cols.id] = table[cols.id].astype(str)
    duplicated = int(table[cols.id].duplicated().sum())
    if duplicated:
        warnings.append(f"{duplicated} duplicate label ids: the last label of each id is used")
        table = table.drop_duplicates(cols.id, keep="last")
    known = set(stream[cols.id].astype(str))
    unknown = int((~table[cols.id].isin(known)).sum())
    if unknown:
        warnings.append(f"{unknown} labels are for ids that are not in the stream: ignored")
    mapping = dict(zip(table[cols.id], table[cols.label], strict=True))
    joined = stream[cols.id].astype(str).map(mapping)
    out = stream.copy()
    if cols.label in out.columns:
        joined = joined.where(joined.notna(), out[cols.label])
    out[cols.label] = joined.to_numpy()
    return out


# ---------------------------------------------------------------------- outputs


def finding_row(finding: Finding) -> dict[str, Any]:
    """One object of findings.json."""
    return {
        "window": finding.window,
        "kind": finding.kind.value,
        "features": finding.features,
        "statistic": finding.statistic,
        "score": finding.score,
        "threshold": finding.threshold,
        "p_value": finding.p_value,
        "detector": finding.detector,
        "message": finding.message,
    }


def write_outputs(result: BacktestResult, out_dir: str | Path) -> dict[str, Path]:
    """Write findings.json, signals.json, report.md and report.html into ``out_dir``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        name: out / name for name in ("findings.json", "signals.json", "report.md", "report.html")
    }
    paths["findings.json"].write_text(
        json.dumps([finding_row(f) for f in result.findings], indent=2)
    )
    paths["signals.json"].write_text(
        json.dumps(
            [
                {"window": w.index, "n": w.n, "start": w.start, "end": w.end, "signals": w.signals}
                for w in result.windows
            ],
            indent=1,
        )
    )
    paths["report.md"].write_text(_markdown(result))
    paths["report.html"].write_text(_html(result))
    return paths


def _signal_frame(result: BacktestResult) -> pd.DataFrame:
    return pd.DataFrame([{"window": w.index, **w.signals} for w in result.windows]).set_index(
        "window"
    )


_KEY_SIGNALS = (
    "accuracy",
    "estimated_accuracy",
    "roc_auc",
    "rmse",
    "mae",
    "error_rate",
    "latency_p99_ms",
    "n_records",
)


def _markdown(result: BacktestResult) -> str:
    s = result.summary()
    lines = [
        "# mlwarden backtest report",
        "",
        f"{s['windows']} windows of {s['window']}, {s['records']:,} records "
        f"({s['labelled']:,} labelled), {s['findings']} findings.",
        "",
    ]
    if s["by_kind"]:
        lines += ["| kind | findings |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in s["by_kind"].items()]
        lines.append("")
    for warning in result.warnings:
        lines.append(f"> warning: {warning}")
    frame = _signal_frame(result)
    shown = [c for c in _KEY_SIGNALS if c in frame.columns and frame[c].notna().any()]
    if shown:
        lines += [
            "",
            "## Signals per window",
            "",
            "| window | " + " | ".join(shown) + " |",
            "|---" * (len(shown) + 1) + "|",
        ]
        for index, row in frame[shown].iterrows():
            cells = ["" if pd.isna(v) else f"{v:.4g}" for v in row]
            lines.append(f"| {index} | " + " | ".join(cells) + " |")
    lines += ["", "## Findings", ""]
    if not result.findings:
        lines.append("No findings.")
    for f in result.findings:
        feats = f" [{', '.join(f.features)}]" if f.features else ""
        lines.append(f"- window {f.window}: **{f.kind.value}**{feats} {f.message}")
    return "\n".join(lines) + "\n"


def _html(result: BacktestResult) -> str:
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    frame = _signal_frame(result)
    figures = []
    shown = [
        c
        for c in _KEY_SIGNALS
        if c in frame.columns and frame[c].notna().any() and c != "n_records"
    ]
    if shown:
        fig = go.Figure()
        for name in shown:
            fig.add_trace(
                go.Scatter(
                    x=frame.index,
                    y=frame[name],
                    name=name,
                    mode="lines+markers",
                    yaxis="y2" if name == "latency_p99_ms" else "y",
                )
            )
            if f"{name}_ci_low" in frame.columns:
                fig.add_trace(
                    go.Scatter(
                        x=list(frame.index) + list(frame.index[::-1]),
                        y=list(frame[f"{name}_ci_high"]) + list(frame[f"{name}_ci_low"][::-1]),
                        fill="toself",
                        opacity=0.2,
                        line={"width": 0},
                        name=f"{name} 95% CI",
                        showlegend=False,
                    )
                )
        for f in result.findings:
            fig.add_vline(x=f.window, line={"color": "red", "width": 1, "dash": "dot"})
        fig.update_layout(
            title="Signals per window (red: windows with findings)",
            xaxis_title="window",
            height=420,
            yaxis2={"overlaying": "y", "side": "right", "title": "ms"},
        )
        figures.append(fig)
    drift = [c for c in frame.columns if c.startswith("drift.") and c.count(".") == 1]
    if drift:
        z = frame[drift].T
        fig = go.Figure(
            go.Heatmap(
                z=z.to_numpy(dtype=float),
                x=list(frame.index),
                y=[c[len("drift.") :] for c in drift],
                colorscale="Reds",
                colorbar={"title": "effect"},
            )
        )
        fig.update_layout(
            title="Drift per feature (effect size: Wasserstein std, PSI or Jensen-Shannon)",
            xaxis_title="window",
            height=max(300, 28 * len(drift) + 120),
        )
        figures.append(fig)
    s = result.summary()
    rows = "".join(
        f"<tr><td>{f.window}</td><td>{html.escape(f.kind.value)}</td>"
        f"<td>{html.escape(', '.join(f.features))}</td><td>{html.escape(f.message)}</td></tr>"
        for f in result.findings
    )
    plots = "".join(fig.to_html(full_html=False, include_plotlyjs=False) for fig in figures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlwarden backtest</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border-bottom:1px solid #ddd;
padding:4px 8px;text-align:left;vertical-align:top}}table{{border-collapse:collapse}}</style>
</head><body>
<h1>mlwarden backtest report</h1>
<p>{s["windows"]} windows of {html.escape(s["window"])}, {s["records"]:,} records
({s["labelled"]:,} labelled), {s["findings"]} findings:
{html.escape(json.dumps(s["by_kind"]))}</p>
{"".join(f"<p><b>warning:</b> {html.escape(w)}</p>" for w in result.warnings)}
{plots}
<h2>Findings</h2>
<table><tr><th>window</th><th>kind</th><th>features</th><th>message</th></tr>{rows}</table>
</body></html>
"""
