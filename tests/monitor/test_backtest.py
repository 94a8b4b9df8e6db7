"""`mlwarden backtest` end to end on small files written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlwarden.cli.main import app

RUNNER = CliRunner()


def _records(
    n: int, start: int, rng: np.random.Generator, shift: float = 0.0, flip: bool = False
) -> pd.DataFrame:
    x = rng.normal(size=n) + shift
    cat = rng.choice(["red", "green", "blue"], n)
    truth = (x + rng.normal(0, 0.7, n) > 0).astype(int)
    score = 1 / (1 + np.exp(-2 * (x - shift if not flip else x)))
    if flip:
        truth = 1 - truth
    return pd.DataFrame(
        {
            "id": [f"r{start + i}" for i in range(n)],
            "timestamp": pd.Timestamp("2026-03-01", tz="UTC")
            + pd.to_timedelta(np.arange(start, start + n) * 10, unit="s"),
            "x": x,
            "colour": cat,
            "score": score,
            "prediction": (score > 0.5).astype(int),
            "label": truth,
            "latency_ms": rng.lognormal(3, 0.3, n),
            "error": "",
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("bt")
    ref = _records(3000, 0, rng)
    stream = pd.concat(
        [_records(1000, 10_000 + 1000 * i, rng) for i in range(4)]
        + [_records(1000, 20_000 + 1000 * i, rng, shift=1.0) for i in range(2)]
    )
    labels = stream[["id", "label"]].sample(frac=1.0, random_state=1)
    paths = {
        "ref": root / "ref.csv",
        "stream": root / "stream.parquet",
        "stream_nolabel": root / "stream_nolabel.csv",
        "labels": root / "labels.csv",
        "policy": root / "policy.yaml",
        "root": root,
    }
    ref.to_csv(paths["ref"], index=False)
    stream.to_parquet(paths["stream"])
    stream.drop(columns="label").to_csv(paths["stream_nolabel"], index=False)
    labels.to_csv(paths["labels"], index=False)
    paths["policy"].write_text(
        "detection:\n  drift_alpha: 0.01\n  latency_slo_ms: 500\ndefaults:\n  mode: advisory\n"
    )
    return paths


def test_backtest_writes_findings_and_offline_reports(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = RUNNER.invoke(
        app,
        [
            "backtest",
            "--reference",
            str(files["ref"]),
            "--stream",
            str(files["stream"]),
            "--window",
            "1000",
            "--out",
            str(out),
            "--json",
            "--policy",
            str(files["policy"]),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["windows"] == 6 and summary["records"] == 6000
    findings = json.loads((out / "findings.json").read_text())
    flagged = {f["window"] for f in findings}
    assert flagged and min(flagged) == 4 and flagged <= {4, 5}
    drift = [f for f in findings if f["kind"] == "data_drift" and f["features"] == ["x"]]
    assert {f["window"] for f in drift} == {4, 5}
    for f in findings:
        assert set(f) >= {"window", "kind", "features", "statistic", "score", "message"}
    page = (out / "report.html").read_text()
    assert "<script src=" not in page  # nothing loaded from a network
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js is inlined
    assert "Drift per feature" in page
    assert "## Findings" in (out / "report.md").read_text()
    assert any("'defaults'" in w for w in summary["warnings"])


def test_labels_from_a_separate_file_and_time_windows(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = RUNNER.invoke(
        app,
        [
            "backtest",
            "--reference",
            str(files["ref"]),
            "--stream",
            str(files["stream_nolabel"]),
            "--labels",
            str(files["labels"]),
            "--window",
            "3h",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["labelled"] == 6000
    signals = json.loads((out / "signals.json").read_text())
    assert all(w["signals"].get("accuracy") is not None for w in signals if w["n"] >= 100)


def test_clear_errors_for_missing_files_and_columns(files: dict[str, Path], tmp_path: Path) -> None:
    missing = RUNNER.invoke(
        app,
        [
            "backtest",
            "--reference",
            str(tmp_path / "nope.csv"),
            "--stream",
            str(files["stream"]),
            "--out",
            str(tmp_path),
        ],
    )
    assert missing.exit_code == 2 and "reference file not found" in missing.output
    no_ts = tmp_path / "no_ts.csv"
    pd.read_csv(files["stream_nolabel"]).drop(columns="timestamp").to_csv(no_ts, index=False)
    bad_window = RUNNER.invoke(
        app,
        [
            "backtest",
            "--reference",
            str(files["ref"]),
            "--stream",
            str(no_ts),
            "--window",
            "1h",
            "--out",
            str(tmp_path),
        ],
    )
    assert bad_window.exit_code == 2 and "timestamp" in bad_window.output
    bad_labels = RUNNER.invoke(
        app,
        [
            "backtest",
            "--reference",
            str(files["ref"]),
            "--stream",
            str(files["stream"]),
            "--labels",
            str(files["ref"]),
            "--label-col",
            "truth",
            "--out",
            str(tmp_path),
        ],
    )
    assert bad_labels.exit_code == 2 and "no label column 'truth'" in bad_labels.output
    other = tmp_path / "other.csv"
    pd.DataFrame({"z": [1, 2]}).to_csv(other, index=False)
    disjoint = RUNNER.invoke(
        app,
        [
            "backtest",
            "--reference",
            str(files["ref"]),
            "--stream",
            str(other),
            "--out",
            str(tmp_path),
        ],
    )
    assert disjoint.exit_code == 2 and "none of the reference's features" in disjoint.output
