"""The agent loop as a background thread of the server, with record retention on each pass
and the policy file read again when it changes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from mlwarden.agent.loop import Agent, default_source
from mlwarden.agent.mlflow_incidents import log_closed_incidents
from mlwarden.agent.policy import configured_policy, load_policy
from mlwarden.agent.policy_history import record_policy
from mlwarden.clock import utcnow
from mlwarden.errors import InvalidInput
from mlwarden.settings import Settings
from mlwarden.store.repository import Store

log = logging.getLogger("mlwarden.agent")


class BackgroundAgent:
    """Runs ``Agent.run_forever`` in a daemon thread until :meth:`stop`.

    After every pass it deletes raw records older than ``record_retention_days`` (windows,
    signals and findings stay), so retention needs no cron job of its own, and reads the
    policy file (``agent_policy``) again when it changed: the next pass decides and detects
    by the new policy, audited as ``policy.loaded``. A policy file that does not validate (or
    is gone) is logged and the one before stays; ``policy_problem`` holds the error until a
    valid file is read, and ``/health``, ``GET /v1/policy`` and the dashboard's policy page show
    it. It also logs the incidents that closed to MLflow when a
    tracking server is named (:mod:`mlwarden.agent.mlflow_incidents`).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        agent: Agent | None = None,
        on_pass: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        # told after each pass (the server warms the dashboard's incident diagnoses)
        self.on_pass = on_pass
        self._mlflow: list[Any] = []  # the MLflow logger of closed incidents, once made
        self.agent = agent or Agent(
            store, configured_policy(settings), default_source(store, settings)
        )
        self._policy_stamp = self._stamp()
        # why the policy file in place is not the policy in use (None: it is)
        self.policy_problem: InvalidInput | None = None
        # the agent's thread after a pass, and a request that just wrote the file
        self._reloading = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlw-agent", daemon=True)

    @property
    def leading(self) -> bool:
        """True while this agent holds the leadership (False: another agent leads, it waits)."""
        leadership = self.agent.leadership
        return leadership is not None and leadership.held

    def start(self) -> BackgroundAgent:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.agent.run_forever(
                self.settings.agent_interval_s,
                stop=self._stop,
                lock_path=self.settings.data_dir / "agent.lock",
                on_pass=self._after_pass,
                lock_timeout_s=self.settings.leader_lock_timeout_s,
            )
        except Exception:  # the server keeps serving even if the agent dies
            log.exception("the background agent stopped")

    def _after_pass(self, _summaries: list[dict[str, Any]]) -> None:
        purge_expired(self.store, self.settings)
        self.reload_policy()
        log_closed_incidents(self.store, self._mlflow)
        if self.on_pass is not None:
            self.on_pass()

    def _stamp(self) -> tuple[int, int] | None:
        path = self.settings.agent_policy
        try:
            stat = path.stat() if path is not None else None
        except OSError:
            return None
        return None if stat is None else (stat.st_mtime_ns, stat.st_size)

    def reload_policy(self) -> bool:
        """Load the policy file again if it changed since it was read; True when it did."""
        with self._reloading:
            return self._reload_policy()

    def _reload_policy(self) -> bool:
        stamp = self._stamp()
        if stamp == self._policy_stamp:
            return False
        if stamp is not None and stamp[1] == 0:
            # an editor or a deploy tool that truncates, then writes: the empty file of that
            # moment is no policy (read as one, it would be the bundled defaults, autonomous
            # mode included, for a pass); the file is read once something is in it
            return False
        try:
            if stamp is None:
                raise InvalidInput(f"policy file {self.settings.agent_policy} cannot be read")
            policy = load_policy(self.settings.agent_policy)
            if self._stamp() != stamp:
                return False  # written while it was read: read again at the next pass
            self._policy_stamp = stamp
        except InvalidInput as exc:
            self._policy_stamp = stamp
            self.policy_problem = exc
            log.error("the policy file changed but is not valid, the one before stays: %s", exc)
            return False
        self.policy_problem = None
        self.agent.policy = policy
        if self.leading:  # an agent that takes the leadership later records it then
            record_policy(self.store, policy, self.agent.actor)
        log.info("policy reloaded from %s", policy.source)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def purge_expired(store: Store, settings: Settings) -> int:
    """Delete raw records past the retention period; returns how many went."""
    days = settings.record_retention_days
    if not days:
        return 0
    removed = store.purge_records(utcnow() - timedelta(days=days))
    if removed:
        log.info("retention: deleted %d records older than %d days", removed, days)
    return removed
