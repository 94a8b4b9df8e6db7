"""``mlwarden demo``: the server, a real model, live traffic and a script of faults.

The demo trains the scenario's model on the bundled data, registers it with a lighter
fallback, starts the real server (API, gateway, dashboard, agent loop) and sends the scenario's
stream to it over HTTP in real time, faults included, with labels arriving a little later. The
agent in the server closes windows, opens incidents, acts (a fallback on the null burst) and
asks for approval where the policy says so (a retrain on the concept change), then verifies.
When the stream ends it starts again, so the faults cycle until Ctrl-C.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from mlwarden.agent.policy import load_policy_text
from mlwarden.registry.registry import Registry
from mlwarden.scenarios.data import install_models, prepare
from mlwarden.scenarios.faults import inject
from mlwarden.scenarios.simulate import clean_row, native, scenario_policy
from mlwarden.scenarios.spec import Scenario
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
        with Store(settings.resolved_database_url) as store:
            self.model = self.data.spec.name
            install_models(Registry(store), self.data, self.scenario, seed=self.seed, actor="demo")
        self.stream = inject(
            self.data.stream,
            self.data.reference,
            self.scenario.faults,
            self.data.target,
            seed=self.seed,
        )
        return settings

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
        self.say(f"sent {self.status.sent:,} predictions and {self.status.labelled:,} labels")
        return self.status

    def stop(self) -> None:
        """End :meth:`run` from another thread (what Ctrl-C does)."""
        self._stop.set()

    def _traffic(self) -> None:
        features = self.data.features
        rows = self.stream[features].to_dict(orient="records")
        labels = self.stream[self.data.target].tolist()
        interval = BATCH / (self.scenario.rate * self.speed)
        pending: deque[tuple[float, str, Any]] = deque()
        delay_s = self.scenario.label_delay / (self.scenario.rate * self.speed)
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            while not self._stop.is_set():
                self.status.loops += 1
                for start in range(0, len(rows), BATCH):
                    if self._stop.is_set():
                        return
                    tick = time.monotonic()
                    self.status.position = start
                    batch = [clean_row(r) for r in rows[start : start + BATCH]]
                    try:
                        answer = client.post(
                            f"/v1/models/{self.model}/predict", json={"instances": batch}
                        )
                        if answer.status_code == 200:
                            for offset, item in enumerate(answer.json()["predictions"]):
                                pending.append((tick + delay_s, item["id"], labels[start + offset]))
                            self.status.sent += len(batch)
                        else:
                            self.status.failed_requests += 1
                        due = []
                        while pending and pending[0][0] <= tick:
                            _, rid, label = pending.popleft()
                            due.append({"id": rid, "label": native(label)})
                        if due:
                            client.post(f"/v1/models/{self.model}/feedback", json={"labels": due})
                            self.status.labelled += len(due)
                    except httpx.HTTPError as exc:
                        self.status.failed_requests += 1
                        log.warning("demo request failed: %s", exc)
                    self._stop.wait(max(0.0, interval - (time.monotonic() - tick)))
