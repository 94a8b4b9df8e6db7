"""One agent pass over a store, run as a subprocess by the crash tests (which SIGKILL it)."""

from __future__ import annotations

import sys

from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import NoNewWindows
from mlwarden.agent.policy import load_policy_text
from mlwarden.store.repository import Store

if __name__ == "__main__":
    store = Store(sys.argv[1])
    Agent(store, load_policy_text(sys.argv[2]), NoNewWindows()).run_once()
    store.close()
