"""The monitor: one model's reference plus a closed window of records -> signals and findings.

The server, the agent, ``mlwarden check``, the simulator and ``mlwarden backtest`` all call the
same thing per closed window::

    monitor = Monitor(reference_frame, spec)          # reference profile computed once
    result = monitor.process(window_frame, index=7)   # signals + findings + profile
    updated = monitor.add_labels({"rec-17": 1, ...})  # late labels -> windows re-scored

A window passes through: profile (``stats.profile``) -> the registered detectors
(``detect.registry``), stage by stage: on the inputs, data drift per feature (``detect.drift``),
multivariate drift (``detect.multivariate``, optional), data quality (``detect.quality``); on the
outputs, prediction drift and collapse (``detect.prediction``); on the service, latency, errors,
throughput and delay (``detect.system``) -> performance with intervals
(``stats.performance``) or, before labels, estimated performance (``monitor.estimate``) ->
concept drift (``detect.concept``: CI drop + River ADWIN on per-record errors; before labels,
the estimate beyond the reference's chunk spread) and a change point on the per-window
performance series itself (``detect.performance_change``, measured or estimated, state kept
across windows), attributed to concept drift when inputs stayed stable and to data drift with
impact when they moved -> anomalies over the vector of signals (``detect.anomaly``).

Bad input never crashes it: an empty window is a ``freshness`` finding, a detector that fails on
odd data becomes a ``data_quality`` finding naming the detector and the error, and every signal
is a finite float or None.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> ref = pd.DataFrame({"x": rng.normal(size=3000)})
>>> monitor = Monitor(ref)
>>> monitor.process(pd.DataFrame({"x": rng.normal(size=1000)}), index=0).findings
[]
>>> [f.kind.value for f in monitor.process(pd.DataFrame({"x": rng.normal(.5, 1, 1000)})).findings]
['data_drift']
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlwarden.detect.anomaly import SignalAnomalyDetector, SignalRule
from mlwarden.detect.base import Detector, DetectorContext, DetectorOutput, Stage, WindowInputs
from mlwarden.detect.concept import (
    StreamingErrorDetector,
    attribute_drop,
    beyond_estimate,
    estimated_drop,
    performance_drop,
)
from mlwarden.detect.performance_change import PerformanceChangeDetector
from mlwarden.detect.prediction import output_signals
from mlwarden.detect.registry import build_all
from mlwarden.detect.system import SystemBaseline, system_signals
from mlwarden.detect.tolerance import DEFAULT_TOLERANCE, RELATIVE_TOLERANCE
from mlwarden.domain import Finding, FindingKind, ModelSpec, Task
from mlwarden.errors import InvalidInput
from mlwarden.monitor.config import MonitorConfig
from mlwarden.monitor.estimate import CBPE, estimation_error
from mlwarden.monitor.window import LabelJoiner, timestamps_of
from mlwarden.stats.performance import (
    MetricSpread,
    MetricValue,
    canonical_label,
    canonical_labels,
    classification_metrics,
    classification_spreads,
    label_sort_key,
    regression_metrics,
    regression_spreads,
)
from mlwarden.stats.profile import Columns, Profile

__all__ = [
    "Monitor",
    "MonitorConfig",
    "WindowResult",
    "empty_window",
    "input_signals",
    "run_stage",
    "sanitize_signals",
]

# Metrics checked for a drop, first that is defined wins (one concept finding per window).
_DROP_METRICS = {Task.CLASSIFICATION: ("accuracy", "roc_auc"), Task.REGRESSION: ("rmse", "mae")}


@dataclass
class WindowResult:
    """What the monitor says about one window; ``to_dict()`` is what the server stores."""

    index: int
    n: int
    signals: dict[str, float | None]
    findings: list[Finding]
    profile: Profile | None
    start: float | None = None
    end: float | None = None
    labelled: int = 0

    def to_dict(self, include_profile: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "window": self.index,
            "n": self.n,
            "start": self.start,
            "end": self.end,
            "labelled": self.labelled,
            "signals": dict(self.signals),
            "findings": [f.model_dump(mode="json") for f in self.findings],
        }
        if include_profile and self.profile is not None:
            out["profile"] = self.profile.to_dict(include_layout=False)
        return out


def sanitize_signals(signals: Mapping[str, Any]) -> dict[str, float | None]:
    """Every signal a finite float or None: NaN and infinities never leave the monitor."""
    out: dict[str, float | None] = {}
    for key, value in signals.items():
        try:
            number = float(value) if value is not None else None
        except (TypeError, ValueError):
            number = None
        out[key] = number if number is not None and math.isfinite(number) else None
    return out


@dataclass
class _Held:
    """What is kept of a recent window to re-score it when its labels arrive."""

    result: WindowResult
    frame: pd.DataFrame
    data_findings: list[Finding]


class Monitor:
    """Monitor of one model: the reference is profiled once and reused for every window."""

    def __init__(
        self,
        reference: pd.DataFrame,
        spec: ModelSpec | None = None,
        config: MonitorConfig | None = None,
        columns: Columns | None = None,
        classes: list[Any] | None = None,
    ) -> None:
        if not isinstance(reference, pd.DataFrame):
            raise InvalidInput("the reference must be a pandas DataFrame of records")
        if len(reference) == 0:
            raise InvalidInput("the reference has no rows")
        self.spec = spec
        self.config = config or MonitorConfig()
        self.cols = columns or Columns()
        c = self.config
        self.reference = Profile.reference(reference, spec, columns=self.cols)
        self.layout = self.reference.layout
        self.features = list(self.layout.features)
        self.task = spec.task if spec else _infer_task(reference, self.cols)
        self.classes = self._classes(reference, classes)
        self.positive = (
            canonical_label(spec.positive_class)
            if spec and spec.positive_class is not None
            else None
        )
        if self.positive and self.positive in self.classes and len(self.classes) == 2:
            self.classes = [x for x in self.classes if x != self.positive] + [self.positive]
        self._context = DetectorContext(
            spec=spec,
            reference_sample=reference[[f for f in self.features if f in reference.columns]].head(
                20_000
            ),
            system_baseline=SystemBaseline.from_arrays(*self.system_columns(reference)),
        )
        # Every registered detector the settings turn on, in the registry's run order.
        self.detectors: list[Detector] = build_all(asdict(c), self._context)
        # the domain classifier, whose calls bench/bench_monitor_window.py counts
        self._multivariate = next(
            (d for d in self.detectors if d.name == "domain_classifier"), None
        )
        self.reference_metrics: dict[str, MetricValue] = {}
        self.reference_spreads: dict[str, MetricSpread] = {}
        self._changes: list[PerformanceChangeDetector] = []
        self.cbpe: CBPE | None = None
        self._streaming = (
            StreamingErrorDetector(
                c.streaming,  # type: ignore[arg-type]
                min_increase=c.streaming_min_increase,
            )
            if c.streaming
            else None
        )
        self._error_scale = 1.0
        if self.cols.label in reference.columns:
            labelled = reference[self._has_label(reference)]
            self.reference_metrics = self._metrics(labelled)
            if self.task is Task.CLASSIFICATION:
                scores = self._scores(labelled)
                if scores is not None:
                    self.cbpe = CBPE(
                        c.calibration,  # type: ignore[arg-type]
                        c.confidence,
                    ).fit(scores, labelled[self.cols.label].tolist(), self.classes)
            # a reference of training rows has labels but no model outputs: no error stream yet
            has_outputs = self.cols.prediction in reference.columns
            if has_outputs:
                self._start_change_points(labelled)
            if self._streaming is not None and len(labelled) and has_outputs:
                errors = self._record_errors(labelled)
                if self.task is Task.REGRESSION:
                    # Absolute errors in target units; scale by the reference MAE so the
                    # detector's minimum increase means "5% of the usual error".
                    self._error_scale = float(np.mean(errors)) or 1.0
                self._streaming.update(errors / self._error_scale)
        self._anomaly = (
            SignalAnomalyDetector(
                rules=[SignalRule(**r) for r in c.rules], min_history=c.anomaly_min_history
            )
            if c.anomaly
            else None
        )
        self._joiner = LabelJoiner(c.late_label_windows)
        self._held: OrderedDict[int, _Held] = OrderedDict()
        self._next_index = 0

    # ------------------------------------------------------------------ reference helpers

    def _classes(self, reference: pd.DataFrame, given: list[Any] | None) -> list[str]:
        if given is not None:
            return [c for c in (canonical_label(x) for x in given) if c is not None]
        if self.task is not Task.CLASSIFICATION:
            return []
        found: set[str] = set()
        for col in (self.cols.label, self.cols.prediction):
            if col in reference.columns:
                # each distinct value spelled once (a reference repeats a few labels 5,000 times)
                found |= {c for c in set(canonical_labels(reference[col])) if c is not None}
        found |= {
            c[len(self.cols.proba_prefix) :]
            for c in reference.columns
            if c.startswith(self.cols.proba_prefix)
        }
        return sorted(found, key=label_sort_key)

    def _proba_columns(self, frame: pd.DataFrame) -> list[str] | None:
        names = {
            canonical_label(c[len(self.cols.proba_prefix) :]): c
            for c in frame.columns
            if c.startswith(self.cols.proba_prefix)
        }
        if names and all(c in names for c in self.classes):
            return [names[c] for c in self.classes]
        return None

    def _scores(self, frame: pd.DataFrame) -> np.ndarray | None:
        """(n, k) probabilities over ``self.classes``, or the positive-class score (binary)."""
        probas = self._proba_columns(frame)
        if probas is not None:
            columns = [frame[c] for c in probas]
            if all(isinstance(c.dtype, np.dtype) and c.dtype.kind in "iuf" for c in columns):
                # numbers already (a window's probabilities): stacked column by column, the
                # (n, k) matrix ``frame[probas].to_numpy`` gives (same layout, column-major)
                # without selecting a sub-frame, most of the cost of a window's scores
                return np.vstack([c.to_numpy(dtype=float) for c in columns]).T
            return np.asarray(_numeric(frame[probas]).to_numpy(dtype=float))
        if self.cols.score in frame.columns and len(self.classes) == 2:
            return np.asarray(_numeric(frame[self.cols.score]).to_numpy(dtype=float))
        return None

    def _start_change_points(self, labelled: pd.DataFrame) -> None:
        """The reference metrics' chunk spread, and one change detector per metric on it."""
        truth = labelled[self.cols.label].tolist()
        pred = labelled[self.cols.prediction].tolist()
        if self.task is Task.CLASSIFICATION:
            self.reference_spreads = classification_spreads(
                truth,
                pred,
                proba=self._scores(labelled),
                classes=self.classes or None,
                positive=self.positive,
            )
        elif self.task is Task.REGRESSION:
            self.reference_spreads = regression_spreads(truth, pred)
        if self.config.change_threshold is None or self.task is None:
            return
        for metric in _DROP_METRICS[self.task]:
            spread = self.reference_spreads.get(metric)
            if spread is None:
                continue
            tol = self.config.performance_tolerance.get(metric, DEFAULT_TOLERANCE.get(metric, 0))
            if metric in RELATIVE_TOLERANCE:
                tol *= abs(spread.level)
            self._changes.append(
                PerformanceChangeDetector(
                    metric,
                    spread,
                    min_shift=tol,
                    threshold=self.config.change_threshold,
                    keep=self.config.keep_windows,
                )
            )

    @property
    def system_baseline(self) -> SystemBaseline:
        """The system signals' baseline; the agent replaces it with one learned in production."""
        baseline: SystemBaseline = self._context.system_baseline
        return baseline

    @system_baseline.setter
    def system_baseline(self, baseline: SystemBaseline) -> None:
        self._context.system_baseline = baseline

    def system_columns(self, frame: pd.DataFrame) -> tuple[Any, Any, Any, Any]:
        """(latency, error, timestamp, received_at) arrays of a record table, for the system
        signals and for a baseline learned from production records."""

        def get(name: str) -> Any:
            return frame[name].to_numpy(dtype=object) if name in frame.columns else None

        stamps = None
        if self.cols.timestamp in frame.columns:
            stamps = timestamps_of(frame[self.cols.timestamp]).dt.tz_localize(None).to_numpy()
        received = None
        if "received_at" in frame.columns:
            received = timestamps_of(frame["received_at"]).dt.tz_localize(None).to_numpy()
        return get(self.cols.latency), get(self.cols.error), stamps, received

    # ------------------------------------------------------------------ per window

    def process(self, window: pd.DataFrame, index: int | None = None) -> WindowResult:
        """Signals and findings of one closed window (its 0-based ``index`` in the stream)."""
        if index is None:
            index = self._next_index
        self._next_index = max(self._next_index, index + 1)
        if not isinstance(window, pd.DataFrame):
            raise InvalidInput("a window must be a pandas DataFrame of records")
        n = len(window)
        if n == 0:
            return empty_window(index)
        signals: dict[str, Any] = {"n_records": float(n)}
        findings: list[Finding] = []

        profile = Profile.from_data(window, self.layout)
        inputs = WindowInputs(self.reference, profile, index, window_frame=window)
        data_findings = self._data_checks(inputs, signals, findings)
        findings += self._run_stage(Stage.OUTPUTS, inputs, signals)
        signals.update(output_signals(profile))
        signals.update(system_signals(*self.system_columns(window)))
        inputs.signals = sanitize_signals(signals)
        findings += self._run_stage(Stage.SERVICE, inputs, signals)

        result = WindowResult(index, n, {}, findings, profile, profile.time_min, profile.time_max)
        if self.config.late_label_windows > 0:
            self._held[index] = _Held(result, self._kept_columns(window), data_findings)
            while len(self._held) > self.config.late_label_windows:
                self._held.popitem(last=False)
            if self.cols.id in window.columns:
                self._joiner.add_window(index, window[self.cols.id].tolist())
        perf_signals, perf_findings = self._performance(window, index, data_findings, stream=True)
        signals.update(perf_signals)
        result.findings = findings + perf_findings
        result.labelled = int(perf_signals.get("n_labelled") or 0)
        result.signals = sanitize_signals(signals)
        if self._anomaly is not None:
            anomalies = self._anomaly.check(result.signals, index)
            if anomalies:
                result.findings += anomalies
            elif not result.findings:
                self._anomaly.observe(result.signals)
        return result

    def _kept_columns(self, window: pd.DataFrame) -> pd.DataFrame:
        keep = [
            c
            for c in window.columns
            if c in (self.cols.id, self.cols.prediction, self.cols.score, self.cols.label)
            or c.startswith(self.cols.proba_prefix)
        ]
        return window[keep].copy()

    def _run_stage(
        self, stage: Stage, inputs: WindowInputs, signals: dict[str, Any]
    ) -> list[Finding]:
        """Run the stage's registered detectors in order; each sees what the ones before it
        found on the window, and their signals join the window's."""
        return run_stage(self.detectors, stage, inputs, signals)

    def _data_checks(
        self, inputs: WindowInputs, signals: dict[str, Any], findings: list[Finding]
    ) -> list[Finding]:
        input_findings = self._run_stage(Stage.INPUTS, inputs, signals)
        findings += input_findings
        signals.update(input_signals(inputs.window))
        # Data-quality breaks also move inputs: a drop they cause is not concept drift.
        return [f for f in input_findings if f.kind is FindingKind.DATA_DRIFT] + [
            f for f in input_findings if f.kind is FindingKind.DATA_QUALITY
        ]

    # ------------------------------------------------------------------ performance

    def _labelled(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.cols.label not in frame.columns or self.cols.prediction not in frame.columns:
            return frame.iloc[0:0]
        has_label = self._has_label(frame)
        # every record labelled (most windows once labels caught up): the frame itself, which
        # is only read, rather than a copy of every column
        return frame if has_label.all() else frame[has_label]

    def _has_label(self, frame: pd.DataFrame) -> np.ndarray:
        return np.array(
            [v is not None for v in canonical_labels(frame[self.cols.label])], dtype=bool
        )

    def _metrics(self, labelled: pd.DataFrame) -> dict[str, MetricValue]:
        if self.cols.prediction not in labelled.columns or self.task is None:
            return {}
        c = self.config
        truth, pred = labelled[self.cols.label], labelled[self.cols.prediction]
        if self.task is Task.REGRESSION:
            return regression_metrics(
                truth.tolist(), pred.tolist(), c.confidence, c.bootstrap_resamples
            )
        # Series, not lists: a numeric column's labels are spelled per distinct value.
        return classification_metrics(
            truth,
            pred,
            proba=self._scores(labelled),
            classes=self.classes or None,
            positive=self.positive,
            confidence=c.confidence,
            resamples=c.bootstrap_resamples,
        )

    def _record_errors(self, labelled: pd.DataFrame) -> np.ndarray:
        truth = labelled[self.cols.label]
        pred = labelled[self.cols.prediction]
        if self.task is Task.REGRESSION:
            err = np.abs(
                _numeric(truth).to_numpy(dtype=float) - _numeric(pred).to_numpy(dtype=float)
            )
            return np.asarray(err[np.isfinite(err)])
        return np.asarray(
            np.array(canonical_labels(truth), dtype=object)
            != np.array(canonical_labels(pred), dtype=object)
        ).astype(float)

    def _performance(
        self, frame: pd.DataFrame, index: int, data_findings: list[Finding], stream: bool
    ) -> tuple[dict[str, Any], list[Finding]]:
        signals: dict[str, Any] = {}
        findings: list[Finding] = []
        estimated: dict[str, MetricValue] = {}
        if self.cbpe is not None and self.cbpe.fitted and self.cols.prediction in frame.columns:
            scores = self._scores(frame)
            if scores is not None:
                estimated = self.cbpe.estimate(scores, frame[self.cols.prediction])
                for name, value in estimated.items():
                    signals[f"estimated_{name}"] = value.value
                    signals[f"estimated_{name}_ci_low"] = value.ci_low
                    signals[f"estimated_{name}_ci_high"] = value.ci_high
        labelled = self._labelled(frame)
        signals["n_labelled"] = float(len(labelled))
        measured = len(labelled) >= self.config.min_labels and self.task is not None
        metrics: dict[str, MetricValue] = {}
        drop = None
        if len(labelled) == 0:
            # The series keep their names (as None) so stored signals line up window by window.
            names = (
                ("rmse", "mae", "r2")
                if self.task is Task.REGRESSION
                else ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "ece")
            )
            signals.update({name: None for name in names if self.task is not None})
        else:
            metrics = self._metrics(labelled)
            for name, value in metrics.items():
                signals[name] = value.value
                signals[f"{name}_ci_low"] = value.ci_low
                signals[f"{name}_ci_high"] = value.ci_high
            for name, err in estimation_error(estimated, metrics).items():
                signals[f"estimation_error.{name}"] = err["abs_error"]
            if measured:
                drop = self._measured_drop(metrics, index)
            if drop is None and stream and self._streaming is not None:
                result = self._streaming.update(self._record_errors(labelled) / self._error_scale)
                drop = self._streaming.finding(result, index)
            elif stream and self._streaming is not None:
                self._streaming.update(self._record_errors(labelled) / self._error_scale)
        if drop is None and not measured:
            drop = self._estimated_drop(estimated, index)
        change = self._performance_change(
            metrics if measured else estimated, index, estimated=not measured
        )
        moved = [
            f for f in data_findings if f.kind in (FindingKind.DATA_DRIFT, FindingKind.DATA_QUALITY)
        ]
        unexplained = None
        if measured and self.task is not None:
            metric = _DROP_METRICS[self.task][0]
            unexplained = beyond_estimate(
                metrics.get(metric),
                estimated.get(metric),
                self.config.performance_tolerance.get(metric, 0.02),
            )
        findings += [attribute_drop(f, moved, unexplained) for f in (drop, change) if f is not None]
        return signals, findings

    def _measured_drop(self, metrics: Mapping[str, MetricValue], index: int) -> Finding | None:
        """The first drop metric defined on both sides, checked with the window's interval."""
        assert self.task is not None
        for metric in _DROP_METRICS[self.task]:
            ref, win = self.reference_metrics.get(metric), metrics.get(metric)
            if ref is None or win is None or ref.value is None or win.value is None:
                continue
            return performance_drop(
                metric, ref, win, self.config.performance_tolerance.get(metric), index
            )
        return None

    def _estimated_drop(self, estimated: Mapping[str, MetricValue], index: int) -> Finding | None:
        """Before labels: the first estimated metric beyond the reference's chunk spread."""
        if self.task is None:
            return None
        for metric in _DROP_METRICS[self.task]:
            spread, value = self.reference_spreads.get(metric), estimated.get(metric)
            if spread is None or value is None or value.value is None:
                continue
            found = estimated_drop(spread, value, self.config.estimated_sigmas, index)
            if found is not None:
                return found
        return None

    def _performance_change(
        self, values: Mapping[str, MetricValue], index: int, estimated: bool
    ) -> Finding | None:
        """Feed every metric's series (all keep state); report the first that dropped."""
        found = None
        for detector in self._changes:
            value = values.get(detector.metric)
            finding = detector.update(
                index,
                value.value if value is not None else None,
                value.n if value is not None else 0,
                estimated=estimated,
            )
            found = found or finding
        return found

    # ------------------------------------------------------------------ late labels

    def add_labels(self, labels: Mapping[Any, Any] | pd.DataFrame) -> list[WindowResult]:
        """Join late labels to their records by id and re-score the windows they belong to.

        ``labels`` maps record id -> label, or is a frame with the id and label columns. Labels
        for ids the monitor does not hold (unknown, or older than ``late_label_windows``) are
        ignored and counted in ``self.unknown_labels``.
        """
        if isinstance(labels, pd.DataFrame):
            missing = [c for c in (self.cols.id, self.cols.label) if c not in labels.columns]
            if missing:
                raise InvalidInput(f"labels need the columns {missing}")
            labels = dict(
                zip(labels[self.cols.id].astype(str), labels[self.cols.label], strict=True)
            )
        routed, unknown = self._joiner.route(labels)
        self.unknown_labels = getattr(self, "unknown_labels", 0) + unknown
        updated: list[WindowResult] = []
        for index in sorted(routed):
            held = self._held.get(index)
            if held is None:
                self.unknown_labels += len(routed[index])
                continue
            frame = held.frame
            ids = frame[self.cols.id].astype(str)
            new = ids.map(routed[index])
            if self.cols.label in frame.columns:
                new = new.where(new.notna(), frame[self.cols.label])
            frame[self.cols.label] = new.to_numpy()
            before = self._labelled(frame.assign(**{self.cols.label: frame[self.cols.label]}))
            fresh = before[before[self.cols.id].astype(str).isin(routed[index].keys())]
            if self._streaming is not None and len(fresh):
                self._streaming.update(self._record_errors(fresh) / self._error_scale)
            perf_signals, perf_findings = self._performance(
                frame, index, held.data_findings, stream=False
            )
            result = held.result
            kept = [
                f
                for f in result.findings
                if f.kind not in (FindingKind.CONCEPT_DRIFT,)
                and not f.detector.startswith("concept.")
            ]
            result.findings = kept + perf_findings
            result.signals = sanitize_signals({**result.signals, **perf_signals})
            result.labelled = int(perf_signals.get("n_labelled") or 0)
            updated.append(result)
        return updated


def empty_window(index: int) -> WindowResult:
    """The result of a window that holds no record: silence is a ``freshness`` finding."""
    finding = Finding(
        kind=FindingKind.FRESHNESS,
        detector="monitor.empty_window",
        statistic="n_records",
        score=0.0,
        threshold=1.0,
        window=index,
        message=f"window {index} holds no records: no data arrived",
    )
    return WindowResult(index, 0, {"n_records": 0.0}, [finding], None)


def run_stage(
    detectors: list[Detector], stage: Stage, inputs: WindowInputs, signals: dict[str, Any]
) -> list[Finding]:
    """Run the stage's detectors in order; each sees what the ones before it found on the
    window, and their signals join the window's."""
    found: list[Finding] = []
    for detector in detectors:
        if detector.stage is not stage:
            continue
        inputs.earlier_findings = list(found)
        output = _safely(detector, inputs)
        signals.update(output.signals)
        found += output.findings
    return found


def input_signals(window: Profile) -> dict[str, float | None]:
    """Per-feature null, invalid and unseen-level rates of a window's profile."""
    signals: dict[str, float | None] = {}
    for name, stats in window.features.items():
        rows = stats.rows
        signals[f"null_rate.{name}"] = stats.nulls / rows if rows else None
        invalid = getattr(stats, "invalid", None)
        if invalid is not None:
            signals[f"invalid_rate.{name}"] = invalid / rows if rows else None
        unseen = getattr(stats, "unseen_count", None)
        if unseen is not None:
            signals[f"unseen_rate.{name}"] = unseen / rows if rows else None
    return signals


def _safely(detector: Detector, inputs: WindowInputs) -> DetectorOutput:
    """The detector's output; a detector failing on odd data must not stop the others, so its
    error becomes a ``data_quality`` finding naming it."""
    try:
        return detector.run(inputs)
    except Exception as exc:
        index = inputs.index
        return DetectorOutput(
            [
                Finding(
                    kind=FindingKind.DATA_QUALITY,
                    detector=f"monitor.{detector.name}",
                    statistic="failed",
                    score=1.0,
                    threshold=0.0,
                    window=index,
                    message=f"{detector.name} could not run on window {index}: {exc}",
                    evidence={"error": type(exc).__name__},
                )
            ]
        )


def _numeric(values: pd.Series | pd.DataFrame) -> Any:
    if isinstance(values, pd.DataFrame):
        if all(kind in "iuf" for kind in values.dtypes.map(lambda d: d.kind)):
            return values  # numbers already (a window's probabilities): nothing to coerce
        return values.apply(lambda col: pd.to_numeric(col, errors="coerce"))
    return pd.to_numeric(values, errors="coerce")


def _infer_task(reference: pd.DataFrame, cols: Columns) -> Task | None:
    """Classification when outputs are strings or a handful of integers, else regression."""
    for name in (cols.label, cols.prediction):
        if name not in reference.columns:
            continue
        values = reference[name].dropna()
        if values.empty:
            continue
        if any(c.startswith(cols.proba_prefix) for c in reference.columns):
            return Task.CLASSIFICATION
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.isna().mean() > 0.5:
            return Task.CLASSIFICATION
        finite = numbers.dropna()
        if (finite == finite.round()).all() and finite.nunique() <= 20:
            return Task.CLASSIFICATION
        return Task.REGRESSION
    return None
