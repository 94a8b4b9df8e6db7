"""One agent pass over a store, in a process of its own, for the crash tests (which SIGKILL it)."""

from __future__ import annotations

import os

from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import NoNewWindows
from mlwarden.agent.policy import load_policy_text
from mlwarden.agent.remedies.base import CRASH_ENV
from mlwarden.store.repository import Store


def one_pass(url: str, policy: str, crash_at: str | None) -> None:
    """One pass of a new agent on a new store of ``url``, SIGKILLed at step ``crash_at``."""
    if crash_at:
        os.environ[CRASH_ENV] = crash_at
    store = Store(url)
    Agent(store, load_policy_text(policy), NoNewWindows()).run_once()
    store.close()
