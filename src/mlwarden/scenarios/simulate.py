"""``mlwarden simulate``: a scenario through the real gateway, store, monitor and agent.

Everything runs in one process on a simulated clock, so nothing sleeps: requests go through
:class:`~mlwarden.serving.gateway.Gateway` in small batches, records are stored in a real SQLite
store, labels arrive ``label_delay`` records later, each closed window is evaluated by the
monitor engine and handed to the :class:`~mlwarden.agent.loop.Agent`, which decides, acts on the
deployment through the registry, and verifies. The same seed gives the same run.

Faults are applied where they happen in production, through the hooks of each kind's class
(``scenarios/faults/``, the same the demo uses): a failing or frozen model is a predictor that
fails or answers a constant; added latency is added to the measured latency (the clock is
simulated); late arrival and traffic surges move the simulated timestamps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pandas.core.dtypes.cast import maybe_box_native
from threadpoolctl import threadpool_limits

from mlwarden.agent.incidents import scope_of
from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import MonitorSource
from mlwarden.agent.operations.service import Operations
from mlwarden.agent.policy import Policy, load_policy, load_policy_text
from mlwarden.agent.reports import incident_context
from mlwarden.clock import simulated_clock
from mlwarden.domain import (
    ActionKind,
    ActionState,
    ApprovalState,
    IncidentState,
    Role,
    Severity,
    Task,
)
from mlwarden.errors import Conflict, InvalidInput, MlwardenError
from mlwarden.heap import frozen_heap
from mlwarden.registry.registry import Registry
from mlwarden.scenarios.data import ScenarioData, install_bad_version, install_models, prepare
from mlwarden.scenarios.faults import (
    Effect,
    InjectedFault,
    Serving,
    Unattended,
    break_request,
    build,
    inject,
)
from mlwarden.scenarios.report import write_reports
from mlwarden.scenarios.score import score
from mlwarden.scenarios.spec import (
    Approve,
    ApproveAfter,
    Fault,
    Scenario,
    in_order,
    load_scenario,
)
from mlwarden.serving.gateway import Gateway
from mlwarden.serving.predictors import Prediction
from mlwarden.settings import Settings
from mlwarden.store.approvals import Approvals
from mlwarden.store.repository import Store

log = logging.getLogger("mlwarden.simulate")

MAX_BATCH = 200  # requests carry up to this many instances (a divisor of the window)
# the stream's youngest generation is collected every this many allocations (heap.frozen_heap)
STREAM_YOUNG_GENERATION = 10_000


class FaultyPredictor:
    """Wraps a version's predictor with the serving faults active at the current position: the
    faulty version's model server answers what the faults' ``serve`` hooks say."""

    is_remote = False  # a scenario's versions are local models

    def __init__(
        self, inner: Any, clock: SimClock, version: int, faults: Sequence[InjectedFault]
    ) -> None:
        self.inner = inner
        self.clock = clock
        self.version = version
        self.faults = faults

    def predict(self, instances: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        position = self.clock.position
        if self.version == self.clock.faulty_version:
            for fault in self.faults:
                if not fault.active(position):
                    continue
                served = fault.serve(
                    position, lambda: self.inner.predict(instances), self.clock.serving
                )
                if served is not None:
                    return served
        return self.inner.predict(instances)


@dataclass
class SimClock:
    """Simulated time and stream position shared by the gateway wrapper and the sink."""

    position: int = 0
    # starts at the real time; while a simulation runs, every timestamp mlwarden writes
    # (deployments, events, journal, audit) comes from this clock
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    # serving faults (errors, frozen answers, latency) hit the model server of this version:
    # the one live when the run starts; a fallback or rollback escapes them
    faulty_version: int | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    # the seed (failures are a function of it and the position) and the majority class
    serving: Serving = field(default_factory=Serving)


class SimulatedGateway(Gateway):
    """The real gateway, with each loaded version wrapped by :class:`FaultyPredictor`."""

    def __init__(self, *args: Any, clock: SimClock, faults: Sequence[Fault], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock
        self._random = random.Random(clock.rng.random())  # canary splits repeat with the seed
        self.serving_faults = [f for f in build(faults) if Effect.ANSWERS in f.effects]
        self._stale: set[str] = set()  # models whose deployment the run changed since it was read

    def _load_version(self, route: Any, number: int) -> Any:
        loaded = super()._load_version(route, number)
        if not isinstance(loaded.predictor, FaultyPredictor):
            loaded.predictor = FaultyPredictor(
                loaded.predictor, self.clock, number, self.serving_faults
            )
        return loaded

    def _shadowing(self) -> bool:
        """Whether shadow copies are being made or are still on their way. A copy's records
        reach the sink when its worker thread is done, among the live answers, and each record
        draws its simulated latency in the order it arrives: while copies are made the gateway
        runs as it always did (the deployment read at each request, the live call on a worker
        thread), so that this order, and so the run's results, stay what they were."""
        if self._shadow_tasks:
            return True
        return any(
            route.deployment is not None and route.deployment.shadow_version is not None
            for route in self._routes.values()
        )

    async def _route(self, model: str) -> Any:
        # otherwise the deployment changes only where the run changes it (a scheduled release,
        # the agent's pass, the operator's answers), and each of those asks for it again
        route = self._routes.get(model)
        if route is not None and model not in self._stale and not self._shadowing():
            return route
        self._stale.discard(model)
        return await self._reload(model)  # read now, as the gateway does with refresh_s = 0

    async def _call(self, loaded: Any, instances: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        # one client on a simulated clock: the model answers on the loop itself, not handed to
        # a worker thread and waited for (the hop cost more than the call on a busy machine)
        if isinstance(loaded.predictor, FaultyPredictor) and not self._shadowing():
            return list(loaded.timed_predict(instances))
        return await super()._call(loaded, instances)

    def reread(self, model: str) -> None:
        """Read ``model``'s deployment again at the next request, keeping the versions loaded
        (``invalidate`` would load them again from their artifacts)."""
        self._stale.add(model)


class SimSink:
    """Receives the gateway's records, stamps simulated times and latency, stores them."""

    def __init__(self, store: Store, clock: SimClock, faults: Sequence[Fault]) -> None:
        self.store = store
        self.clock = clock
        self.latency_faults = [f for f in build(faults) if Effect.LATENCY in f.effects]
        self.delay = [f for f in build(faults) if Effect.ARRIVAL in f.effects]
        # the records stored since the client's request began (``Simulation._send``)
        self.rows: list[dict[str, Any]] = []
        self.count = 0

    def latency(self, version: int | None) -> float:
        """Simulated latency: a steady log-normal service time (about 4 ms), plus the injected
        delay when the faulty version answered.

        The gateway's measured wall time is not used: it depends on the machine's load, and a
        simulation must give the same answer for the same seed.
        """
        added = self.clock.rng.lognormvariate(math.log(4.0), 0.25)
        for fault in self.latency_faults:
            if fault.active(self.clock.position) and version == self.clock.faulty_version:
                added += fault.added_latency_ms(self.clock.rng)
        return added

    def submit(self, records: Sequence[Mapping[str, Any]]) -> None:
        delay = sum(f.arrival_delay_s() for f in self.delay if f.active(self.clock.position))
        now = self.clock.now
        stamp = now - timedelta(seconds=delay)  # one request's records share their times
        rows = []
        for record in records:
            # sequential ids (not the gateway's random ones) keep the order of a window's
            # records, and so the whole run, the same for the same seed
            self.count += 1
            row = {
                **record,
                "id": f"sim-{self.count:09d}",
                "received_at": now,
                "timestamp": stamp,
                "latency_ms": self.latency(record.get("version")),
            }
            rows.append(row)
        self.store.insert_records(rows)
        self.rows.extend(rows)


@dataclass
class Operator:
    """The scenario's operator stand-in (``approve:``): it answers pending approvals through
    :class:`~mlwarden.store.approvals.Approvals`, the way an operator's click does; the agent
    runs an approved action on its next pass."""

    approvals: Approvals
    model: str
    rule: Approve
    asked: dict[int, int] = field(default_factory=dict)  # approval id → window first seen

    def answer(self, window: int) -> dict[int, str]:
        """Answer what waits after the agent's pass of ``window``; returns id → decision."""
        decided: dict[int, str] = {}
        if self.rule == "never":
            return decided
        for approval in self.approvals.list(state=ApprovalState.PENDING, model=self.model):
            asked = self.asked.setdefault(approval["id"], window)
            try:
                if self.rule == "reject":
                    self.approvals.reject(
                        approval["id"],
                        actor="operator",
                        role=Role.OPERATOR,
                        reason="the scenario's operator rejects every request",
                    )
                    decided[approval["id"]] = "rejected"
                elif self.rule == "always" or (
                    isinstance(self.rule, ApproveAfter) and window - asked >= self.rule.after
                ):
                    self.approvals.approve(
                        approval["id"],
                        actor="operator",
                        role=Role.OPERATOR,
                        reason=f"the scenario's operator approves ({self.describe()})",
                    )
                    decided[approval["id"]] = "approved"
            except Conflict:
                continue  # answered or expired in between: nothing left to decide
        return decided

    def describe(self) -> str:
        rule = self.rule
        return f"after {rule.after} windows" if isinstance(rule, ApproveAfter) else rule


@dataclass
class SimulationResult:
    timeline: list[dict[str, Any]]
    summary: dict[str, Any]
    out: Path

    @property
    def passed(self) -> bool:
        score = self.summary.get("score") or {}
        return bool(score.get("passed", True))


class Simulation:
    """Run one scenario; ``progress(done, total)`` is called after each window."""

    def __init__(
        self,
        scenario: Scenario,
        out: Path,
        *,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
        shuffle: bool | None = None,
    ) -> None:
        """``shuffle`` replaces the scenario's own order: False streams the rows in the
        dataset's (time) order, True shuffles them."""
        if shuffle is not None:
            scenario = in_order(scenario, "shuffled" if shuffle else "time")
        self.scenario = scenario
        self.out = Path(out)
        self.seed = seed
        self.progress = progress
        self.seconds: dict[str, tuple[float, float]] = {}  # phase → (wall, CPU), once run

    # ------------------------------------------------------------------ set-up

    def _setup(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        db = self.out / "simulation.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        self.settings = Settings(
            data_dir=self.out,
            database_url=f"sqlite:///{db.resolve()}",
            window_size=self.scenario.window,
            reference_size=self.scenario.window,
            # time is simulated: a wall-clock timeout would depend on how busy the machine is
            predict_timeout_ms=600_000.0,
            # records are stored as they are made, on the simulated clock: nothing to wait for
            window_settle_s=0.0,
        )
        self.store = Store(self.settings.resolved_database_url)
        self.registry = Registry(self.store)
        self.data: ScenarioData = prepare(self.scenario, self.seed)
        self.model = self.data.spec.name
        champion, self.fallback_version, fallback = install_models(
            self.registry, self.data, self.scenario, seed=self.seed, actor="scenario"
        )
        self.bad_version: int | None = None
        bad = None
        self.faults = build(self.scenario.faults)
        if any(f.needs_bad_version for f in self.faults):
            self.bad_version, bad = install_bad_version(
                self.registry, self.data, self.scenario, seed=self.seed, actor="scenario"
            )
        self.stream = inject(
            self.data.stream,
            self.data.reference,
            self.scenario.faults,
            self.data.target,
            seed=self.seed,
        )
        # the largest batch that divides the window, so windows end on batch boundaries
        self.batch = max(b for b in range(1, MAX_BATCH + 1) if self.scenario.window % b == 0)
        if self.data.task is Task.CLASSIFICATION:
            self.clock.serving.majority = native(
                self.data.reference[self.data.target].mode().iloc[0]
            )
        self.clock.faulty_version = 1  # the champion, live from the start
        self.sink = SimSink(self.store, self.clock, self.scenario.faults)
        self.gateway = SimulatedGateway(
            self.store,
            self.sink,
            self.settings,
            refresh_s=0.0,  # every read in the foreground; when to read: SimulatedGateway._route
            clock=self.clock,
            faults=self.scenario.faults,
        )
        self.source = MonitorSource(self.store, self.settings)
        self.agent = Agent(
            self.store,
            scenario_policy(self.scenario),
            self.source,
            actor="agent",
            clock=lambda: self.clock.now,
        )
        self._last_window: int | None = None
        self._seen_actions: dict[int, int] = {}
        self._seen_approvals: dict[int, int] = {}
        self.operator = Operator(self.agent.approvals, self.model, self.scenario.approve)
        self._metric_name = "accuracy" if self.data.task is Task.CLASSIFICATION else "rmse"
        features = self.data.features
        self._truth_array = self.stream[self.data.target].to_numpy()
        self._clean_truth = self.data.stream[self.data.target].to_numpy()
        # what a refused or failed request costs in RMSE: the error of an uninformed answer
        self._unanswered = (
            None
            if self.data.task is Task.CLASSIFICATION
            else float(self.data.reference[self.data.target].mean())
        )
        # what was served per stream position (None: refused or failed), filled as it streams
        self._answers: np.ndarray = np.full(len(self.stream), None, dtype=object)
        self._oracle = champion.predict(self.data.stream[features])
        self._no_action = self._unattended(champion, bad, fallback)

    def _unattended(self, champion: Any, bad: Any, fallback: Any) -> np.ndarray:
        """What the stream would have been answered with had nobody acted on the faults: the
        gateway still falls back on a failed call; a request it refuses (a schema break) is
        marked as it streams (see :meth:`_stream`). None: no answer."""
        X = self.stream[self.data.features]
        answers = self._oracle.astype(object)
        # the champion answers each row on its own: only the rows a fault changed are asked
        # again (the oracle asked it about the clean ones)
        changed = changed_rows(X, self.data.stream[self.data.features])
        if changed.any():
            answers[changed] = champion.predict(X[changed]).astype(object)
        run = Unattended(X, self.batch, self.clock.serving, bad=bad, fallback=fallback)
        for fault in self.faults:
            fault.unattended(answers, fault.mask(len(answers)), run)
        return answers

    # ------------------------------------------------------------------ the run

    def run(self) -> SimulationResult:
        # one BLAS/OpenMP thread: the run is sequential anyway, and on a busy machine spinning
        # worker threads cost more than they give
        self.clock = SimClock(rng=random.Random(self.seed), serving=Serving(seed=self.seed))
        marks = [(time.perf_counter(), time.process_time())]
        with threadpool_limits(1), simulated_clock(lambda: self.clock.now):
            self._setup()
            marks.append((time.perf_counter(), time.process_time()))
            # the modules, models and store the setup left are walked by no collection of the
            # stream, and its short-lived rows are mostly gone before a pass could walk them
            # (collections took 1.4-1.5 of its 11.7-12.1 s CPU: docs/benchmarks.md)
            with frozen_heap(young=STREAM_YOUNG_GENERATION):
                timeline = asyncio.run(self._stream())
                marks.append((time.perf_counter(), time.process_time()))
                summary = summarise(self.scenario, timeline, self._actions(), self._playbooks())
        self._write(timeline, summary)
        self.store.close()
        marks.append((time.perf_counter(), time.process_time()))
        # (wall, CPU) seconds of each phase, for bench/bench_simulate.py (not in the results)
        self.seconds = {
            phase: (end[0] - start[0], end[1] - start[1])
            for phase, start, end in zip(
                ("setup", "stream", "summary"), marks, marks[1:], strict=False
            )
        }
        return SimulationResult(timeline, summary, self.out)

    async def _stream(self) -> list[dict[str, Any]]:
        scenario = self.scenario
        features = self.data.features
        target = self.data.target
        timeline: list[dict[str, Any]] = []
        pending_labels: list[tuple[int, str, Any]] = []
        windows = scenario.windows
        total = windows * scenario.window
        instances = CleanColumns.of(self.stream[features])
        labels = self.stream[target].tolist()
        step = self.batch
        for position in range(0, total, step):
            self.clock.position = position
            self._apply_deploy_faults(position)
            clean = instances.rows(position, position + step)
            batch = [
                break_request(row, position + i, self.faults, self.clock.rng.random)
                for i, row in enumerate(clean)
            ]
            for offset, (row, sent) in enumerate(zip(clean, batch, strict=True)):
                if sent != row:
                    # the gateway refuses a broken request whatever the agent does
                    self._no_action[position + offset] = None
            for offset, record in enumerate(await self._send(batch)):
                if record is not None:
                    self._answers[position + offset] = record.get("prediction")
                    label = native(labels[position + offset])
                    pending_labels.append((position + offset, record["id"], label))
            self.clock.now += timedelta(seconds=len(batch) / self._rate(position))
            due = [
                item
                for item in pending_labels
                if item[0] <= position + len(batch) - scenario.label_delay
            ]
            if due:
                self.store.add_feedback(self.model, [(rid, label) for _, rid, label in due])
                pending_labels = pending_labels[len(due) :]
            end = position + len(batch)
            if end % scenario.window == 0:
                index = end // scenario.window - 1
                timeline.append(self._close_window(index))
                if self.progress:
                    self.progress(index + 1, windows)
        await self.gateway.aclose()
        return timeline

    async def _send(self, batch: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """Send ``batch`` as a client does; the record that answered each row (None: refused
        or failed).

        A refused batch (e.g. after a schema change upstream) is sent again without the rows
        the gateway named as bad, the way a client resends the valid part; the gateway keeps
        the refused rows as error records, so the monitor sees them."""
        answers: list[dict[str, Any] | None] = [None] * len(batch)
        pending = list(range(len(batch)))
        while pending:
            # the records of earlier requests are needed no more (and, kept, would be walked
            # by every full garbage collection of the stream)
            self.sink.rows.clear()
            try:
                await self.gateway.predict(self.model, [batch[i] for i in pending])
                # the shadow copies of this request are stored before the next one is sent:
                # left to finish on their worker thread whenever the machine lets them, their
                # records drew their simulated latencies (and met the faults active) at a
                # moment the load decided, and a verification watching the shadowed champion
                # reverted a fallback on a busy machine and kept it on a quiet one
                await self.gateway.drain_shadows()
            except InvalidInput as exc:
                bad = {pending[k] for k in exc.detail.get("bad_rows", ())}
                if not bad:
                    break
                pending = [i for i in pending if i not in bad]
                continue
            except MlwardenError as exc:
                log.info("window request failed: %s", exc.message)
            served = [
                r
                for r in self.sink.rows
                if r["served_by"] != "shadow"
                and (r.get("prediction") is not None or r.get("error"))
            ]
            for i, record in zip(pending, _one_per_instance(served, len(pending)), strict=True):
                answers[i] = record
            break
        return answers

    def _rate(self, position: int) -> float:
        rate = self.scenario.rate
        for fault in self.faults:
            if fault.active(position):
                rate *= fault.rate_factor()
        return rate

    def _apply_deploy_faults(self, position: int) -> None:
        for fault in self.faults:
            if self.bad_version is not None and fault.releases_at(position, self.batch):
                Operations(self.store, actor="release-pipeline").deploy(
                    self.model, self.bad_version, reason="scheduled release (scenario: bad deploy)"
                )
                self.gateway.invalidate(self.model)

    # ------------------------------------------------------------------ windows

    def _close_window(self, index: int) -> dict[str, Any]:
        """Let the agent take one pass (the monitor closes the window), let the operator
        stand-in answer what waits for approval, then read the window's story."""
        self.agent.run_once([self.model])
        self.operator.answer(index)
        self.gateway.reread(self.model)  # the requests after this read the deployment anew
        # the monitor counts stored records, so after a burst of failed attempts (each answered
        # again by the fallback) its windows run ahead of the stream's: take what closed now
        views = self.agent.repo.recent_windows(self.model, 1000, after=self._last_window)
        if views:
            self._last_window = views[-1].window
        signals = dict(views[-1].signals) if views else {}
        findings = [
            {
                "kind": f.kind.value,
                "scope": scope_of(f).value,  # what the scorer asks a control's findings
                "features": list(f.features),
                "statistic": f.statistic,
                "score": round(f.score, 6),
                "message": f.message,
            }
            for view in views
            for f in view.findings
        ]
        # every incident of the model: two can open in one window (a deploy's drop beside the
        # drift of the same windows), and the newest alone would hide the other from the score
        every = self.agent.repo.list_incidents(self.model, limit=1000)  # newest first
        incident = next(iter(every), None)
        deployment = self.store.get_deployment(self.model)
        actions = []
        for action in reversed(self.agent.journal.list(self.model)):
            if action["id"] in self._seen_actions:
                continue
            self._seen_actions[action["id"]] = index
            actions.append({"id": action["id"], "action": action["kind"], "state": action["state"]})
        for approval in self.agent.approvals.list(model=self.model):
            if approval["id"] not in self._seen_approvals:
                self._seen_approvals[approval["id"]] = index
                actions.append(
                    {
                        "approval": approval["id"],
                        "action": approval["action"],
                        "state": "awaiting approval",
                    }
                )
        metric = self._metric_name
        start = index * self.scenario.window
        stop = start + self.scenario.window
        truth = self._truth_array[start:stop]
        served = metric_of(self.data.task, truth, self._answers[start:stop], self._unanswered)
        return {
            "index": index,
            "start_record": start,
            "time": self.clock.now.isoformat(),
            "metric_name": metric,
            "metrics": {
                metric: served,
                f"monitored_{metric}": signals.get(metric),
                f"estimated_{metric}": signals.get(f"estimated_{metric}"),
                "error_rate": signals.get("error_rate"),
                "latency_p99_ms": signals.get("latency_p99_ms"),
            },
            "baselines": {
                "no_action": metric_of(
                    self.data.task, truth, self._no_action[start:stop], self._unanswered
                ),
                "oracle": metric_of(
                    self.data.task, self._clean_truth[start:stop], self._oracle[start:stop]
                ),
            },
            "faults": sorted({f.kind for f in self.scenario.faults if f.active(start)}),
            "findings": findings,
            "incident": None if incident is None else _incident_entry(incident),
            "incidents": [_incident_entry(i) for i in reversed(every)],
            "deployment_revision": deployment.revision if deployment else None,
            "live_version": deployment.live_version if deployment else None,
            "actions": actions,
        }

    def _playbooks(self) -> dict[int, str | None]:
        """The best-matching playbook of each incident, from its stored evidence."""
        out: dict[int, str | None] = {}
        for incident in self.agent.repo.list_incidents(self.model, limit=1000):
            diagnosis = incident_context(self.store, incident["id"])["diagnosis"]
            out[incident["id"]] = (
                diagnosis.matches[0].id if diagnosis and diagnosis.matches else None
            )
        return out

    def _actions(self) -> list[dict[str, Any]]:
        """Every action with the window it was taken in and how it ended."""
        verdicts = self.agent.repo.action_verdicts()
        out = []
        for action in reversed(self.agent.journal.list(self.model, limit=1000)):
            state, verdict = action["state"], verdicts.get(action["id"])
            # a fallback released once the data is clean again was undone because it worked
            # a retrain whose canary held up did its part; the promotion is judged on its own
            if verdict in ("recovered", "canary_passed") or (
                state is ActionState.DONE and action["kind"] is ActionKind.ALERT
            ):
                outcome = "succeeded"
            elif state is ActionState.DONE and verdict == "not_recovered":
                # short of the baseline, but serving no worse than doing nothing: left in place
                # and escalated to people
                outcome = "kept"
            elif state is ActionState.UNDONE or verdict in ("not_recovered", "canary_failed"):
                outcome = "reverted"
            elif state is ActionState.FAILED:
                outcome = "failed"
            else:
                outcome = "pending"
            out.append(
                {
                    "window": self._seen_actions.get(action["id"], -1),
                    "action": action["kind"],
                    "outcome": outcome,
                    "incident": action["incident_id"],
                }
            )
        for approval in self.agent.approvals.list(model=self.model):
            waiting = approval["state"] is ApprovalState.PENDING
            if waiting or approval["state"] in {ApprovalState.REJECTED, ApprovalState.EXPIRED}:
                out.append(
                    {
                        "window": self._seen_approvals.get(approval["id"], -1),
                        "action": approval["action"],
                        "outcome": "pending" if waiting else "rejected",
                        "incident": approval["incident_id"],
                    }
                )
        return sorted(out, key=lambda a: a["window"])

    def _write(self, timeline: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        (self.out / "timeline.json").write_text(json.dumps(timeline, indent=2, default=str))
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        write_reports(self.out, self.scenario, timeline, summary)


def _one_per_instance(records: list[dict[str, Any]], count: int) -> list[dict[str, Any] | None]:
    """The record that answered each instance: the last attempt (live, else fallback) per slot."""
    if not records:
        return [None] * count
    attempts = [records[i : i + count] for i in range(0, len(records), count)]
    answer: list[dict[str, Any] | None] = [None] * count
    for attempt in attempts:
        for i, record in enumerate(attempt):
            if record.get("prediction") is not None:
                answer[i] = record
    return answer


def clean_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as JSON would carry it: NaN as None, NumPy scalars as Python numbers."""
    return {
        k: (None if isinstance(v, float) and np.isnan(v) else native(v)) for k, v in row.items()
    }


@dataclass(frozen=True)
class CleanColumns:
    """A frame's values as ``clean_row`` gives them, a list per column: each row's dict is
    made when it is sent (``rows``), so a stream of 40,000 rows holds no 40,000 dicts for the
    garbage collector to walk on every full pass."""

    keys: list[str]
    columns: list[list[Any]]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> CleanColumns:
        """``frame`` converted column by column rather than value by value."""
        plain = frame.astype(object).where(frame.notna(), None)
        columns = []
        for name in plain.columns:
            values = plain[name].tolist()
            if frame[name].dtype.kind not in "fiub":
                # what ``to_dict`` does to every value; a numeric column's objects are already
                # Python numbers and None, which it leaves as they are
                values = [maybe_box_native(v) for v in values]
            columns.append(values)
        return cls(plain.columns.tolist(), columns)

    def rows(self, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
        """The rows ``start`` to ``stop`` (the end when None), one dict each."""
        keys = self.keys
        part = (column[start:stop] for column in self.columns)
        return [dict(zip(keys, row, strict=True)) for row in zip(*part, strict=True)]


def clean_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``clean_row`` of every row of ``frame``, column by column rather than value by value."""
    return CleanColumns.of(frame).rows()


def changed_rows(frame: pd.DataFrame, clean: pd.DataFrame) -> np.ndarray:
    """Which rows of ``frame`` differ from the same rows of ``clean`` (same columns): in a
    value, a missing value, or a column's type; every row when they cannot be compared."""
    if len(frame) != len(clean) or list(frame.columns) != list(clean.columns):
        return np.ones(len(frame), dtype=bool)
    changed = np.zeros(len(frame), dtype=bool)
    try:
        for name in frame.columns:
            a, b = frame[name], clean[name]
            if a.dtype != b.dtype:
                return np.ones(len(frame), dtype=bool)
            equal = np.asarray(a.to_numpy() == b.to_numpy(), dtype=bool)
            changed |= ~(equal | (np.asarray(a.isna()) & np.asarray(b.isna())))
    except (TypeError, ValueError):  # e.g. pandas.NA, which is neither equal nor unequal
        return np.ones(len(frame), dtype=bool)
    return changed


def native(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def metric_of(
    task: Task, truth: Any, predicted: Any, unanswered: float | None = None
) -> float | None:
    """Accuracy (classification) or RMSE (regression) of one window's answers.

    A missing answer (None: the request was refused or failed) is a wrong answer; in RMSE it
    costs the error of answering ``unanswered`` (the reference mean)."""
    truth = np.asarray(truth)
    predicted = np.asarray(predicted, dtype=object)
    if len(truth) == 0:
        return None
    missing = np.array([p is None for p in predicted], dtype=bool)
    if task is Task.CLASSIFICATION:
        right = truth.astype(str) == np.where(missing, "", predicted).astype(str)
        return float(np.mean(right & ~missing))
    fill = 0.0 if unanswered is None else unanswered
    answers = np.where(missing, fill, predicted).astype(float)
    return float(np.sqrt(np.mean((truth.astype(float) - answers) ** 2)))


def scenario_policy(scenario: Scenario) -> Policy:
    """The default policy, with the scenario's file or inline overrides and its mode."""
    if isinstance(scenario.policy, str):
        return load_policy(scenario.policy)
    overrides = dict(scenario.policy or {})
    overrides.setdefault("mode", scenario.mode)
    # merged over the bundled defaults like any policy
    return load_policy_text(yaml.safe_dump({"defaults": overrides}), f"scenario {scenario.name}")


def _incident_entry(incident: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": incident["id"],
        "state": incident["state"],
        "severity": incident["severity"],
        "diagnosis": incident["diagnosis"],
    }


def summarise(
    scenario: Scenario,
    timeline: list[dict[str, Any]],
    actions: list[dict[str, Any]],
    playbooks: Mapping[int, str | None] | None = None,
) -> dict[str, Any]:
    """summary.json: findings, incidents, actions with outcomes, and the score."""
    findings = [
        {"window": w["index"], "kind": f["kind"], "features": f["features"]}
        for w in timeline
        for f in w["findings"]
    ]
    incidents: dict[int, dict[str, Any]] = {}
    seen = (
        (w, incident)
        for w in timeline
        for incident in w.get("incidents", [w["incident"]] if w["incident"] else [])
    )
    for w, incident in seen:
        entry = incidents.setdefault(
            incident["id"],
            {
                "opened_window": w["index"],
                "kind": incident["diagnosis"],
                "severity": incident["severity"],
                "max_severity": incident["severity"],
                "playbook": (playbooks or {}).get(incident["id"]),
                "resolved_window": None,
                "state": incident["state"],
            },
        )
        entry["state"] = incident["state"]
        entry["severity"] = incident["severity"]
        if incident["severity"]:
            entry["max_severity"] = (
                Severity(incident["severity"]).raise_to(Severity(entry["max_severity"])).value
                if entry["max_severity"]
                else incident["severity"]
            )
        entry["kind"] = incident["diagnosis"]
        closed = {IncidentState.RESOLVED, IncidentState.DISMISSED}
        if incident["state"] in closed and entry["resolved_window"] is None:
            entry["resolved_window"] = w["index"]
    return {
        "scenario": scenario.name,
        "order": "shuffled" if scenario.shuffle else "time",
        "windows": len(timeline),
        "findings": findings,
        "incidents": list(incidents.values()),
        "actions": actions,
        "score": score(scenario, timeline, actions, list(incidents.values())),
    }


__all__ = ["Simulation", "SimulationResult", "load_scenario", "summarise"]
