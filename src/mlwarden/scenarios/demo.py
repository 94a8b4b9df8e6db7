"""``mlwarden demo``: the server, a real model, live traffic and a script of faults.

The demo trains the scenario's model on the bundled data, registers it with a lighter
fallback, starts the real server (API, gateway, dashboard, agent loop) and sends the scenario's
stream to it over HTTP in real time, faults included, with labels arriving a little later. The
agent in the server closes windows, opens incidents, acts (a fallback on the null burst) and
asks for approval where the policy says so (a retrain on the concept change), then verifies.
When the stream ends it starts again, so the faults cycle until Ctrl-C.

Every fault the demo announces is applied, through the hooks the simulator uses
(``scenarios/faults/``): the rows' faults on the stream; a schema break on the requests sent
(the gateway refuses what it cannot read, and the demo resends the batch one by one, as
clients do); serving faults (errors, a frozen model, latency) by its faulty model server
(:mod:`~mlwarden.scenarios.model_server`), deployed as the live version; a bad deploy by a
release of a version trained on shuffled labels; a traffic surge by sending faster; a late
arrival by shipping the period's records through the bulk records endpoint with their own,
earlier timestamps (the answers of the champion, as a log pipeline would deliver them).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from mlwarden.agent.operations.service import Operations
from mlwarden.agent.policy import load_policy_text
from mlwarden.clock import utcnow
from mlwarden.domain import Task
from mlwarden.registry.registry import Registry
from mlwarden.scenarios.data import install_bad_version, install_models, prepare
from mlwarden.scenarios.faults import Serving, break_request, build, inject
from mlwarden.scenarios.model_server import SERVING_EFFECTS, FaultyModelServer
from mlwarden.scenarios.simulate import clean_row, native, scenario_policy
from mlwarden.scenarios.spec import Scenario
from mlwarden.serving.predictors import LocalPredictor
from mlwarden.settings import Settings
from mlwarden.store.repository import Store

log = logging.getLogger("mlwarden.demo")

BATCH = 10


class RunningServer(Protocol):
    """A started mlwarden server: where it answers, and how to stop it."""

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


# starts the server on the settings' port (``mlwarden.server.background.serve_in_background``);
# passed in, since the scenarios sit below the server that composes them
Serve = Callable[[Settings], RunningServer]


@dataclass
class DemoStatus:
    sent: int = 0
    labelled: int = 0
    loops: int = 0
    failed_requests: int = 0
    refused: int = 0  # instances the gateway refused (a schema break), after resending each
    shipped_late: int = 0  # records sent through the records endpoint (a late arrival)
    position: int = 0


class Demo:
    """Set up the demo's store and model, then serve and stream until stopped."""

    def __init__(
        self,
        scenario: Scenario,
        data_dir: Path,
        *,
        serve: Serve,
        port: int = 8000,
        speed: float = 1.0,
        seed: int = 0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.scenario = scenario
        self.data_dir = Path(data_dir)
        self.serve = serve
        self.port = port
        self.speed = speed
        self.seed = seed
        self.say = say
        self.status = DemoStatus()
        self._stop = threading.Event()
        self.faults = build(scenario.faults)
        # the record that answered each stream position, for the last pass over the stream
        self.answered: dict[int, str] = {}
        self.bad_version: int | None = None
        self.faulty_version: int | None = None
        self.model_server: FaultyModelServer | None = None

    def prepare(self) -> Settings:
        """A fresh data folder with the trained model registered and deployed."""
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)
        policy_file = self.data_dir / "policy.yaml"
        policy = scenario_policy(self.scenario)
        policy_file.write_text(
            yaml.safe_dump({"defaults": policy.defaults.model_dump(mode="json")})
        )
        load_policy_text(policy_file.read_text(), str(policy_file))  # fail early if invalid
        settings = Settings(
            data_dir=self.data_dir,
            port=self.port,
            window_size=self.scenario.window,
            reference_size=self.scenario.window,
            agent_policy=policy_file,
            agent_interval_s=1.0,
            agent_in_server=True,
            write_flush_interval_s=0.2,
        )
        self.data = prepare(self.scenario, self.seed)
        self.say(
            f"training {self.scenario.model.algorithm} on {len(self.data.train):,} rows "
            f"of the bundled {self.scenario.dataset} data …"
        )
        self.model = self.data.spec.name
        with Store(settings.resolved_database_url) as store:
            registry = Registry(store)
            installed = install_models(
                registry, self.data, self.scenario, seed=self.seed, actor="demo"
            )
            self.champion = LocalPredictor(installed.champion, self.data.spec)
            if any(f.needs_bad_version for f in self.faults):
                self.bad_version, _ = install_bad_version(
                    registry, self.data, self.scenario, seed=self.seed, actor="demo"
                )
            if any(f.effects & SERVING_EFFECTS for f in self.faults):
                self.faulty_version = self._deploy_model_server(registry, store)
        self.settings = settings
        self.stream = inject(
            self.data.stream,
            self.data.reference,
            self.scenario.faults,
            self.data.target,
            seed=self.seed,
        )
        return settings

    def _deploy_model_server(self, registry: Registry, store: Store) -> int:
        """Serve the champion from the faulty model server and make it the live version; the
        champion's own artifact (version 1) stays registered, a rollback target."""
        majority = None
        if self.data.task is Task.CLASSIFICATION:
            majority = native(self.data.reference[self.data.target].mode().iloc[0])
        self.model_server = FaultyModelServer(
            self.champion,
            self.faults,
            Serving(seed=self.seed, majority=majority),
            lambda: self.status.position,
            seed=self.seed,
        ).start()
        info = registry.add_remote_version(
            self.model,
            self.model_server.url,
            reference=store.reference_sample(self.model, 1),
            description="the champion behind its model server (where serving faults happen)",
            actor="demo",
        )
        Operations(store, actor="demo").deploy(
            self.model, info.number, reason="served by its model server"
        )
        return info.number

    def run(self, duration_s: float | None = None) -> DemoStatus:
        """Serve and stream until Ctrl-C (or ``duration_s``); returns what was sent."""
        settings = self.prepare()
        server = self.serve(settings)
        self.url = server.url
        self.say(f"mlwarden is serving on {server.url}/ui/  (API: {server.url}/docs)")
        self.say("authentication: disabled (loopback only)")
        self.say(
            f"streaming {self.scenario.rate * self.speed:.0f} predictions/s to model "
            f"{self.model!r}; faults: "
            + ", ".join(f"{f.kind} from record {f.start}" for f in self.scenario.faults)
        )
        if self.model_server is not None:
            self.say(
                f"serving faults hit version {self.faulty_version}, the champion behind its "
                f"model server at {self.model_server.url} (version 1 is the same model, "
                "served in the gateway)"
            )
        if threading.current_thread() is threading.main_thread():
            # a service manager's SIGTERM stops the demo as cleanly as Ctrl-C does
            signal.signal(signal.SIGTERM, lambda *_: self.stop())
        traffic = threading.Thread(target=self._traffic, name="mlw-demo-traffic", daemon=True)
        traffic.start()
        started = time.monotonic()
        try:
            while (
                not self._stop.is_set()
                and traffic.is_alive()
                and (duration_s is None or time.monotonic() - started < duration_s)
            ):
                time.sleep(0.2)
        except KeyboardInterrupt:
            self.say("stopping …")
        finally:
            self._stop.set()
            traffic.join(10)
            server.stop()
            if self.model_server is not None:
                self.model_server.stop()
        self.say(f"sent {self.status.sent:,} predictions and {self.status.labelled:,} labels")
        return self.status

    def stop(self) -> None:
        """End :meth:`run` from another thread (what Ctrl-C does)."""
        self._stop.set()

    def interval_s(self, position: int) -> float:
        """Seconds between the batches sent from ``position``: the scenario's rate times the
        demo's speed, times every active fault's rate factor (a traffic surge)."""
        rate = self.scenario.rate * self.speed
        for fault in self.faults:
            if fault.active(position):
                rate *= fault.rate_factor()
        return BATCH / rate

    def _traffic(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            while not self._stop.is_set():
                self.status.loops += 1
                if not self.stream_once(client):
                    return

    def stream_once(self, client: httpx.Client, *, pace: bool = True) -> bool:
        """Send the stream once, with every fault applied; False when stopped on the way.

        ``pace=False`` sends as fast as the server answers (tests)."""
        features, target = self.data.features, self.data.target
        rows = self.stream[features].to_dict(orient="records")
        labels = self.stream[target].tolist()
        pending: deque[tuple[float, str, Any]] = deque()
        delay_s = self.scenario.label_delay / (self.scenario.rate * self.speed)
        draw = random.Random(self.seed).random
        self.answered = {}
        for start in range(0, len(rows), BATCH):
            if self._stop.is_set():
                return False
            tick = time.monotonic()
            self.status.position = start
            self._release(client, start)
            clean = [clean_row(r) for r in rows[start : start + BATCH]]
            batch = [break_request(r, start + i, self.faults, draw) for i, r in enumerate(clean)]
            try:
                ids = self._send(client, start, batch)
                for offset, rid in enumerate(ids):
                    if rid is not None:
                        self.answered[start + offset] = rid
                        pending.append((tick + delay_s, rid, labels[start + offset]))
                due = []
                while pending and (pending[0][0] <= tick or not pace):
                    _, rid, label = pending.popleft()
                    due.append({"id": rid, "label": native(label)})
                if due:
                    client.post(f"/v1/models/{self.model}/feedback", json={"labels": due})
                    self.status.labelled += len(due)
            except httpx.HTTPError as exc:
                self.status.failed_requests += 1
                log.warning("demo request failed: %s", exc)
            if pace:
                self._stop.wait(max(0.0, self.interval_s(start) - (time.monotonic() - tick)))
        return True

    def _release(self, client: httpx.Client, position: int) -> None:
        """A bad deploy: at its start the release pipeline deploys the bad version through the
        API (so the server serves it from the next request on)."""
        if self.bad_version is None:
            return
        for fault in self.faults:
            if fault.releases_at(position, BATCH):
                client.patch(
                    f"/v1/models/{self.model}/deployment",
                    json={
                        "live_version": self.bad_version,
                        "reason": "scheduled release (scenario: bad deploy)",
                    },
                ).raise_for_status()

    def _send(
        self, client: httpx.Client, start: int, batch: list[dict[str, Any]]
    ) -> list[str | None]:
        """Send one batch; the id of the record that answered each instance (None: none)."""
        late = sum(f.arrival_delay_s() for f in self.faults if f.active(start))
        if late:
            return self._ship_late(client, start, batch, late)
        answer = client.post(f"/v1/models/{self.model}/predict", json={"instances": batch})
        if answer.status_code == 200:
            self.status.sent += len(batch)
            return [item["id"] for item in answer.json()["predictions"]]
        if answer.status_code != 422:
            self.status.failed_requests += 1
            return [None] * len(batch)
        # refused (a schema break): resent one by one, so the valid ones are still answered
        ids: list[str | None] = []
        for row in batch:
            one = client.post(f"/v1/models/{self.model}/predict", json={"instances": [row]})
            if one.status_code == 200:
                self.status.sent += 1
                ids.append(one.json()["predictions"][0]["id"])
            else:
                self.status.refused += one.status_code == 422
                self.status.failed_requests += one.status_code != 422
                ids.append(None)
        return ids

    def _ship_late(
        self, client: httpx.Client, start: int, batch: list[dict[str, Any]], late_s: float
    ) -> list[str | None]:
        """A late arrival: the batch's records, answered by the champion, shipped through the
        records endpoint with timestamps ``late_s`` before now (a late log pipeline)."""
        made = (utcnow() - timedelta(seconds=late_s)).isoformat()
        answers = self.champion.predict(batch)
        ids = [f"demo-{self.status.loops}-{start + i}" for i in range(len(batch))]
        lines = [
            json.dumps(
                {
                    **row,
                    "id": rid,
                    "timestamp": made,
                    "prediction": native(answer.prediction),
                    "version": 1,
                }
            )
            for rid, row, answer in zip(ids, batch, answers, strict=True)
        ]
        shipped = client.post(
            f"/v1/models/{self.model}/records",
            content="\n".join(lines).encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        if shipped.status_code != 200:
            self.status.failed_requests += 1
            return [None] * len(batch)
        self.status.sent += len(batch)
        self.status.shipped_late += len(batch)
        return list(ids)
