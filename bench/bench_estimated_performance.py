"""Label-free performance on NannyML's synthetic datasets: estimate error, alerts, false alerts.

Usage::

    .venv/bin/python bench/bench_estimated_performance.py [--nannyml-python /tmp/nml/bin/python]
        [--chunk 5000] [--json OUT.json]
    .venv/bin/python bench/bench_estimated_performance.py --prepare NANNYML_PACKAGE/datasets/data

The three synthetic classification datasets shipped inside the ``nannyml`` package (binary
"work from home", car loan, multi-class credit card; ``bench/data/nannyml/PROVENANCE.md``) each
have a labelled reference period and an analysis period whose labels arrive late. Per dataset,
the monitor (``mlwarden.monitor.engine.Monitor``, default settings) is built on the reference
and fed the analysis period in chunks of ``--chunk`` rows *without labels*; then the labels are
used to score it:

- MAE of the estimated accuracy and ROC AUC against the realized ones, per chunk;
- the chunks where the realized metric really dropped: below the reference chunks' mean minus
  3 standard deviations (the realized-performance thresholds NannyML draws, on the reference's
  own chunks of the same size);
- the chunks where mlwarden raised a performance finding (``concept.estimated_drop`` or
  ``concept.performance_change``, whatever kind the attribution gave it): hits on dropped
  chunks, false alerts on the others, and the change window it reported;
- the reference period fed the same way: every finding there is false.

NannyML is not a dependency of mlwarden (it pins old libraries). With ``--nannyml-python``
pointing at an interpreter that has it, its CBPE runs on the same data in that interpreter
(``--worker nannyml``, which imports only pandas and NannyML) and its estimates and alerts are
shown side by side; without it, its columns say "not run".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DATA = Path(__file__).parent / "data" / "nannyml"
MULTICLASS = ["prepaid_card", "highstreet_card", "upmarket_card"]
METRICS = ("accuracy", "roc_auc")
PERFORMANCE_DETECTORS = ("concept.estimated_drop", "concept.performance_change")

# name -> (reference file, analysis file, analysis labels file, label column, score columns)
SOURCES: dict[str, tuple[str, str, str, str, dict[str, str]]] = {
    "binary": (
        "synthetic_sample_reference.csv",
        "synthetic_sample_analysis.csv",
        "synthetic_sample_analysis_gt.csv",
        "work_home_actual",
        {"y_pred_proba": "score"},
    ),
    "car_loan": (
        "synthetic_car_loan_reference.csv",
        "synthetic_car_loan_analysis.csv",
        "synthetic_car_loan_analysis_target.csv",
        "repaid",
        {"y_pred_proba": "score"},
    ),
    "multiclass": (
        "mc_reference.csv",
        "mc_analysis.csv",
        "mc_analysis_gt.csv",
        "y_true",
        {f"y_pred_proba_{c}": f"proba_{c}" for c in MULTICLASS},
    ),
}


# ---------------------------------------------------------------------- data


def prepare(source: Path, out: Path = DATA) -> None:
    """Write the three datasets from NannyML's package data folder as compressed Parquet."""
    out.mkdir(parents=True, exist_ok=True)
    for name, (ref, ana, truth, label, scores) in SOURCES.items():
        reference = pd.read_csv(source / ref)
        analysis = pd.read_csv(source / ana).merge(pd.read_csv(source / truth), on="id", how="left")
        reference["period"], analysis["period"] = "reference", "analysis"
        frame = pd.concat([reference, analysis], ignore_index=True)
        frame = frame.rename(columns={label: "label", "y_pred": "prediction", **scores})
        frame = frame.drop(columns=["id", "timestamp"])
        for col in frame.columns:
            if col in ("score", "label", "prediction") or col.startswith("proba_"):
                continue
            if frame[col].dtype == float:
                values = frame[col].dropna()
                frame[col] = (
                    frame[col].astype("int64")
                    if (values == values.round()).all() and not frame[col].isna().any()
                    else frame[col].astype("float32")
                )
        path = out / f"{name}.parquet"
        frame.to_parquet(path, compression="zstd", compression_level=19, index=False)
        print(
            f"{path}: {frame.shape[0]:,} rows x {frame.shape[1]} columns, "
            f"{path.stat().st_size / 1e6:.1f} MB"
        )


def load(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, analysis) of one dataset, analysis with its late labels in ``label``."""
    frame = pd.read_parquet(DATA / f"{name}.parquet")
    reference = frame[frame["period"] == "reference"].drop(columns="period")
    analysis = frame[frame["period"] == "analysis"].drop(columns="period")
    return reference.reset_index(drop=True), analysis.reset_index(drop=True)


def chunks(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """Consecutive chunks of ``size`` rows; a short last chunk is dropped, as NannyML does."""
    return [frame.iloc[i : i + size] for i in range(0, len(frame) - size + 1, size)]


def score_columns(name: str) -> dict[str, Any]:
    if name == "multiclass":
        return {c: f"proba_{c}" for c in MULTICLASS}
    return {"positive": "score"}


# ---------------------------------------------------------------------- mlwarden


def realized(frame: pd.DataFrame, name: str) -> dict[str, float | None]:
    from mlwarden.stats.performance import classification_metrics

    proba = (
        frame[[f"proba_{c}" for c in MULTICLASS]].to_numpy()
        if name == "multiclass"
        else frame["score"].to_numpy()
    )
    metrics = classification_metrics(
        frame["label"].tolist(),
        frame["prediction"].tolist(),
        proba=proba,
        classes=MULTICLASS if name == "multiclass" else None,
        resamples=10,
    )
    return {m: metrics[m].value for m in METRICS}


def run_mlwarden(name: str, size: int) -> dict[str, Any]:
    from mlwarden.monitor.engine import Monitor

    reference, analysis = load(name)
    started = time.perf_counter()
    classes = MULTICLASS if name == "multiclass" else None
    # reference chunks' realized spread: what "really dropped" means, NannyML's way
    ref_realized = [realized(c, name) for c in chunks(reference, size)]
    bands = {}
    for m in METRICS:
        values = np.array([r[m] for r in ref_realized], dtype=float)
        bands[m] = float(values.mean() - 3 * values.std(ddof=0))
    out: dict[str, Any] = {"bands": bands, "periods": {}}
    for period, frame in (("reference", reference), ("analysis", analysis)):
        monitor = Monitor(reference, classes=classes)
        rows = []
        for i, chunk in enumerate(chunks(frame, size)):
            result = monitor.process(chunk.drop(columns="label"), index=i)
            perf = [f for f in result.findings if f.detector in PERFORMANCE_DETECTORS]
            truth = realized(chunk, name)
            rows.append(
                {
                    "chunk": i,
                    "estimated": {m: result.signals.get(f"estimated_{m}") for m in METRICS},
                    "realized": truth,
                    "dropped": {m: truth[m] is not None and truth[m] < bands[m] for m in METRICS},
                    "findings": [
                        {
                            "detector": f.detector,
                            "kind": f.kind.value,
                            "metric": f.evidence.get("metric"),
                            "change_window": f.evidence.get("change_window"),
                        }
                        for f in perf
                    ],
                }
            )
        out["periods"][period] = rows
    out["seconds"] = time.perf_counter() - started
    return out


# ---------------------------------------------------------------------- NannyML


def run_nannyml(python: str | None, size: int) -> dict[str, Any] | str:
    if not python:
        return "not run"
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    proc = subprocess.run(
        [python, __file__, "--worker", "nannyml", "--chunk", str(size)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"not run (worker failed: {tail})"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def nannyml_worker(size: int) -> None:
    """Runs in the NannyML interpreter: CBPE estimates and alerts on every analysis chunk."""
    import nannyml as nml

    out = {}
    for name in SOURCES:
        reference, analysis = load(name)
        if name == "multiclass":
            kw: dict[str, Any] = {
                "problem_type": "classification_multiclass",
                "y_pred_proba": {c: f"proba_{c}" for c in MULTICLASS},
            }
        else:
            kw = {"problem_type": "classification_binary", "y_pred_proba": "score"}
        cbpe = nml.CBPE(
            y_pred="prediction", y_true="label", metrics=list(METRICS), chunk_size=size, **kw
        ).fit(reference)
        result = cbpe.estimate(analysis.drop(columns="label"))
        table = result.filter(period="analysis").to_df()
        out[name] = {
            m: {
                "value": table[(m, "value")].astype(float).tolist(),
                "alert": table[(m, "alert")].astype(bool).tolist(),
            }
            for m in METRICS
        }
    print(json.dumps(out))


# ---------------------------------------------------------------------- report


def summarise(name: str, ours: dict[str, Any], theirs: dict[str, Any] | str) -> dict[str, Any]:
    rows = ours["periods"]["analysis"]
    dropped = [any(r["dropped"].values()) for r in rows]
    flagged = [bool(r["findings"]) for r in rows]
    summary: dict[str, Any] = {
        "dataset": name,
        "chunks": len(rows),
        "dropped": {m: sum(r["dropped"][m] for r in rows) for m in METRICS},
        "dropped_any": sum(dropped),
        "hits": sum(d and f for d, f in zip(dropped, flagged, strict=True)),
        "false": sum(f and not d for d, f in zip(dropped, flagged, strict=True)),
        "reference_chunks": len(ours["periods"]["reference"]),
        "reference_false": sum(bool(r["findings"]) for r in ours["periods"]["reference"]),
        "change_windows": sorted(
            {
                f["change_window"]
                for r in rows
                for f in r["findings"]
                if f["change_window"] is not None
            }
        ),
        "first_dropped": next((r["chunk"] for r, d in zip(rows, dropped, strict=True) if d), None),
        "kinds": sorted({f"{f['detector']}:{f['kind']}" for r in rows for f in r["findings"]}),
        "mae": {},
        "nannyml": None,
    }
    for m in METRICS:
        errors = [
            abs(r["estimated"][m] - r["realized"][m])
            for r in rows
            if r["estimated"][m] is not None and r["realized"][m] is not None
        ]
        summary["mae"][m] = float(np.mean(errors)) if errors else None
    if isinstance(theirs, dict):
        mine = theirs[name]
        alerts = [any(mine[m]["alert"][i] for m in METRICS) for i in range(len(rows))]
        summary["nannyml"] = {
            "mae": {
                m: float(
                    np.mean(
                        [
                            abs(v - r["realized"][m])
                            for v, r in zip(mine[m]["value"], rows, strict=True)
                        ]
                    )
                )
                for m in METRICS
            },
            "hits": sum(d and a for d, a in zip(dropped, alerts, strict=True)),
            "false": sum(a and not d for d, a in zip(dropped, alerts, strict=True)),
        }
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunk", type=int, default=5000)
    parser.add_argument("--nannyml-python", default=None)
    parser.add_argument("--json", dest="json_out", default=None)
    parser.add_argument("--prepare", default=None, help="NannyML's datasets/data folder")
    parser.add_argument("--worker", choices=["nannyml"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        nannyml_worker(args.chunk)
        return
    if args.prepare:
        prepare(Path(args.prepare))
        return
    theirs = run_nannyml(args.nannyml_python, args.chunk)
    if isinstance(theirs, str):
        print(f"NannyML: {theirs}")
    summaries, details = [], {}
    for name in SOURCES:
        ours = run_mlwarden(name, args.chunk)
        details[name] = ours
        summaries.append(summarise(name, ours, theirs))
        print(f"{name}: {ours['seconds']:.1f} s", flush=True)
    print()
    print(
        "| dataset | chunks | MAE accuracy (mlwarden / NannyML) | MAE ROC AUC (mlwarden / "
        "NannyML) | dropped (acc / AUC / any) | mlwarden found | mlwarden false | "
        "NannyML found | NannyML false | reference false | change window (first drop) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in summaries:
        nml_part = s["nannyml"] or {}

        def fmt(value: float | None) -> str:
            return "—" if value is None else f"{value:.4f}"

        nml_mae = nml_part.get("mae", {})
        print(
            f"| {s['dataset']} | {s['chunks']} | {fmt(s['mae']['accuracy'])} / "
            f"{fmt(nml_mae.get('accuracy'))} | {fmt(s['mae']['roc_auc'])} / "
            f"{fmt(nml_mae.get('roc_auc'))} | {s['dropped']['accuracy']} / "
            f"{s['dropped']['roc_auc']} / {s['dropped_any']} | {s['hits']}/{s['dropped_any']} "
            f"| {s['false']} | {nml_part.get('hits', '—')}/{s['dropped_any']} | "
            f"{nml_part.get('false', '—')} | {s['reference_false']}/{s['reference_chunks']} | "
            f"{s['change_windows']} ({s['first_dropped']}) |"
        )
    totals = {
        k: sum(s[k] for s in summaries)
        for k in ("chunks", "dropped_any", "hits", "false", "reference_false")
    }
    print(
        f"\ntotal: {totals['chunks']} chunks, {totals['dropped_any']} dropped, mlwarden found "
        f"{totals['hits']}, {totals['false']} false; reference period "
        f"{totals['reference_false']} false"
    )
    for s in summaries:
        print(f"{s['dataset']}: finding kinds {s['kinds']}")
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"summary": summaries, "details": details}, indent=1)
        )


if __name__ == "__main__":
    sys.exit(main())
