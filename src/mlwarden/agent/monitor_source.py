"""The agent's window source in production: stored records, cut into windows by count and evaluated
by the monitor engine (:class:`~mlwarden.monitor.engine.Monitor`).

A window is the next ``window_size`` records of a model in arrival order (``received_at``, then
id), shadow copies left out; it closes when it is full. Its labels are those stored when it
closes. Each window starts strictly after the last record of the window before, whose key is
stored with that window: reading by key rather than by offset costs the same for the thousandth
window as for the first, and records purged by retention shift nothing. The monitor of a model
is built once per live version, from the reference sample stored with the version (scored by the
version itself so that prediction drift and estimated performance have a baseline), or from the
stored records of the windows an accepted drift re-based it on (``agent.acceptance``, policy
``drift.rebaseline_on_accept``), or, for a remote version (which only a probe's rows or none
stand for), from its first ``reference_size`` production records, answers and confidence
included; the system baseline (latency, errors, arrival delay) is learned from the first
``reference_size`` production records of the model, since a training sample has no latency.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import pandas as pd

from mlwarden.agent.acceptance import rebaseline_in_force
from mlwarden.clock import utcnow
from mlwarden.detect.system import SystemBaseline
from mlwarden.domain import Finding, ModelSpec
from mlwarden.monitor.engine import Monitor, MonitorConfig
from mlwarden.monitor.window import columns_frame, records_frame
from mlwarden.serving.predictors import LocalPredictor
from mlwarden.settings import Settings
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store

log = logging.getLogger("mlwarden.agent")


def reference_frame(store: Store, spec: ModelSpec, version: int) -> pd.DataFrame | None:
    """The version's stored reference sample, scored by the version: features, label,
    prediction and probabilities. None when the version has no sample."""
    sample = store.reference_sample(spec.name, version)
    if not sample:
        return None
    frame = pd.DataFrame.from_records(sample)
    instances = frame[[f for f in spec.feature_names if f in frame.columns]]
    rows = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()}
        for r in instances.to_dict(orient="records")
    ]
    info = store.get_version(spec.name, version)
    if info.kind == "sklearn":
        predictor = LocalPredictor.from_artifact(store.load_artifact(spec.name, version), spec)
        answers = predictor.predict(rows)
        frame["prediction"] = [a.prediction for a in answers]
        scored = records_frame([{"id": i, "scores": a.scores} for i, a in enumerate(answers)])
        for column in scored.columns:
            if column == "score" or column.startswith("proba_"):
                frame[column] = scored[column].to_numpy()
    if spec.target and spec.target in frame.columns:
        frame = frame.rename(columns={spec.target: "label"})
    return frame


@dataclass
class ClosedWindow:
    """A window the monitor closed: its number, end time, signals and findings, and the
    (received_at, id) of its last record when it was cut from stored records."""

    window: int
    ts: datetime
    signals: dict[str, float | None] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    end_received_at: datetime | None = None
    end_record_id: str | None = None


class WindowSource(Protocol):
    """Where the agent gets closed windows from (the Monitor engine in production)."""

    def closed_windows(self, model: str, after: int | None) -> Sequence[ClosedWindow]: ...


class NoNewWindows:
    """A source that closes nothing: the agent works on the windows already stored."""

    def closed_windows(self, model: str, after: int | None) -> Sequence[ClosedWindow]:
        return []


class MonitorSource:
    """Closes full windows of stored records and evaluates them, one Monitor per live version.

    The monitor's settings are ``config`` when given, else ``detection(model)`` asked at each
    window (the agent's policy: a reloaded policy changes the next window; a model whose
    settings changed gets a new monitor, its streaming detectors starting afresh), else the
    defaults of ``MonitorConfig``.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        config: MonitorConfig | None = None,
        detection: Callable[[str], MonitorConfig] | None = None,
    ) -> None:
        self.store = store
        self.repo = AgentRepo(store)
        self.settings = settings or Settings()
        self.config = config
        self.detection = detection
        self._monitors: dict[str, tuple[int, Monitor]] = {}
        # the re-based reference each model's monitor was built on (None: the registered one)
        self._rebased: dict[str, tuple[int, int, int] | None] = {}
        self._baselines: dict[str, SystemBaseline] = {}

    @property
    def window_size(self) -> int:
        return self.settings.window_size

    def _received_before(self) -> datetime | None:
        """Records that arrived after this are not read yet (the window settle time)."""
        settle = self.settings.window_settle_s
        if settle <= 0:
            return None
        # never shorter than the writer's own lag: two flush intervals
        settle = max(settle, 2 * self.settings.write_flush_interval_s)
        return utcnow() - timedelta(seconds=settle)

    def _window_rows(
        self,
        model: str,
        after: tuple[datetime, str] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> dict[str, Sequence[Any]]:
        """Up to ``limit`` (default ``window_size``) records in arrival order, strictly after
        the (received_at, id) key ``after`` (from the first record when None), past ``offset``
        records more; one sequence per key of a record (``Store.columns_by_arrival``)."""
        size = limit or self.window_size
        columns = self.store.columns_by_arrival(
            model, after=after, received_before=self._received_before(), limit=size + offset
        )
        return {key: values[offset:] for key, values in columns.items()}

    def _config(self, model: str) -> MonitorConfig:
        """The model's settings, holding no window for late labels: a window's labels are
        those stored when it closes and it is never re-scored (50 held windows were 7-10 MB a
        model; docs/benchmarks.md, "A fleet")."""
        config = self.config
        if config is None and self.detection is not None:
            config = self.detection(model)
        return replace(config or MonitorConfig(), late_label_windows=0)

    def _monitor(self, spec: ModelSpec, version: int) -> Monitor:
        held = self._monitors.get(spec.name)
        if (
            held is not None
            and held[0] != version
            and self.store.get_version(spec.name, version).health != "healthy"
        ):
            version = held[0]  # an unhealthy version is judged on the reference before it
        config = self._config(spec.name)
        # an accepted drift may have re-based the reference (``agent.acceptance``)
        rebase = rebaseline_in_force(self.repo.accepted_incidents(spec.name), version)
        if (
            held is not None
            and held[0] == version
            and held[1].config == config
            and self._rebased.get(spec.name) == rebase
        ):
            return held[1]
        first: dict[str, Sequence[Any]] = {}  # the model's earliest records, read if needed
        reference = None if rebase is None else self._rebased_reference(spec.name, rebase)
        if reference is None:
            reference = reference_frame(self.store, spec, version)
        if reference is None or "prediction" not in reference.columns:
            # a remote version: its sample, if it has one (the rows its prober sends), holds
            # no answers, so the baseline of its outputs and confidence is production's
            first = self._window_rows(spec.name, limit=self.settings.reference_size)
            reference = columns_frame(first)
        monitor = Monitor(reference, spec, config)
        baseline = self._baselines.get(spec.name)
        if baseline is None:
            first = first or self._window_rows(spec.name, limit=self.settings.reference_size)
            early = columns_frame(first)
            baseline = SystemBaseline.from_arrays(*monitor.system_columns(early))
            self._baselines[spec.name] = baseline
        monitor.system_baseline = baseline
        self._monitors[spec.name] = (version, monitor)
        self._rebased[spec.name] = rebase
        return monitor

    def _rebased_reference(self, model: str, rebase: tuple[int, int, int]) -> pd.DataFrame | None:
        """The stored records of the windows an accepted drift re-based the reference on
        (their served answers and the labels stored since), or None when they are gone."""
        _, first, last = rebase
        until = self.repo.window_end(model, last)
        after = self.repo.window_end(model, first - 1) if first > 0 else None
        if until is None or (first > 0 and after is None):
            return None
        rows = self.store.records_by_arrival(model, after=after, until=until)
        return records_frame(rows) if rows else None

    def closed_windows(self, model: str, after: int | None) -> list[ClosedWindow]:
        spec: ModelSpec | None = None  # read once a window is full: most passes close none
        deployment = self.store.get_deployment(model)
        if deployment is None or deployment.live_version is None:
            return []
        closed: list[ClosedWindow] = []
        index = 0 if after is None else after + 1
        key = None if after is None else self.repo.window_end(model, after)
        # a window stored before end keys were kept: find the next one by offset, once (exact
        # unless retention has purged records since), then go on by key
        offset = index * self.window_size if after is not None and key is None else 0
        size = self.window_size
        while True:
            # two windows' worth a read: the pass that closes a window learns from the same
            # read whether the next one is full, where a read of its own cost as much SQL
            rows = self._window_rows(model, key, offset, limit=2 * size)
            offset = 0
            read = len(rows["id"])
            for start in range(0, read - size + 1, size):
                window = {name: values[start : start + size] for name, values in rows.items()}
                spec = spec or self.store.get_model(model)
                monitor = self._monitor(spec, deployment.live_version)
                result = monitor.process(columns_frame(window), index=index)
                key = (window["received_at"][-1], str(window["id"][-1]))
                closed.append(
                    ClosedWindow(
                        index,
                        key[0],
                        dict(result.signals),
                        list(result.findings),
                        end_received_at=key[0],
                        end_record_id=key[1],
                    )
                )
                index += 1
            if read < 2 * size:
                return closed
