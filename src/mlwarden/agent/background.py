"""The agent loop as a background thread of the server, with record retention on each pass."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from mlwarden.agent.loop import Agent, default_source
from mlwarden.agent.policy import configured_policy
from mlwarden.clock import utcnow
from mlwarden.settings import Settings
from mlwarden.store.repository import Store

log = logging.getLogger("mlwarden.agent")


class BackgroundAgent:
    """Runs ``Agent.run_forever`` in a daemon thread until :meth:`stop`.

    After every pass it deletes raw records older than ``record_retention_days`` (windows,
    signals and findings stay), so retention needs no cron job of its own.
    """

    def __init__(self, store: Store, settings: Settings, agent: Agent | None = None) -> None:
        self.store = store
        self.settings = settings
        self.agent = agent or Agent(
            store, configured_policy(settings), default_source(store, settings)
        )
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
