"""What each dashboard session asked the assistant and what it answered, so the console shows
the conversation so far, not only the last reply.

Kept in the server's memory per browser session (the key the session's conversation has: its
name and CSRF token, so each sign-in starts afresh), the newest ``per_session`` exchanges of at
most ``sessions`` sessions, the least recently used dropped: 50 short entries for each of 1,000
sessions is a few megabytes at most. A restart forgets them, as it forgets the conversations'
"it"; what the commands changed stays in the store and the audit log.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from mlwarden.clock import utcnow
from mlwarden.ui.server_state import kept_on

__all__ = ["AssistantHistories", "Exchange", "histories_of"]

MAX_TEXT = 2_000  # characters kept of a command and of a reply's message


@dataclass(frozen=True)
class Exchange:
    """One command (or upload) and the assistant's answer, as the console lists it."""

    at: str  # UTC, minutes: "2026-12-01 01:20"
    text: str
    status: str
    message: str
    # a download the answer offered: its link and what it names
    url: str | None = None
    label: str | None = None


class AssistantHistories:
    """The exchanges of every dashboard session with the assistant, oldest first per session."""

    def __init__(self, per_session: int = 50, sessions: int = 1_000) -> None:
        self.per_session = per_session
        self.sessions = sessions
        self._items: OrderedDict[str, deque[Exchange]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, text: str, reply: dict[str, Any]) -> Exchange:
        """Record ``reply`` (an assistant reply as a dict) to ``text`` in ``key``'s history."""
        result = reply.get("result") or {}
        url = result.get("url") if isinstance(result, dict) else None
        label = None
        if url:
            dataset = result.get("dataset") or {}
            label = f"{dataset.get('name')} v{dataset.get('version')} ({result.get('format')})"
        exchange = Exchange(
            at=utcnow().strftime("%Y-%m-%d %H:%M"),
            text=text[:MAX_TEXT],
            status=str(reply.get("status", "")),
            message=str(reply.get("message", ""))[:MAX_TEXT],
            url=url,
            label=label,
        )
        with self._lock:
            kept = self._items.get(key)
            if kept is None:
                kept = self._items[key] = deque(maxlen=self.per_session)
            kept.append(exchange)
            self._items.move_to_end(key)
            while len(self._items) > self.sessions:
                self._items.popitem(last=False)
        return exchange

    def of(self, key: str) -> list[Exchange]:
        """``key``'s exchanges, oldest first."""
        with self._lock:
            return list(self._items.get(key, ()))


def histories_of(state: Any) -> AssistantHistories:
    """The histories kept by the server whose :class:`~mlwarden.api.deps.ServerState` is
    ``state`` (made on first use)."""
    return kept_on(state, "_ui_assistant_histories", AssistantHistories)
