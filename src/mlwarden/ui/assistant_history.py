"""What each dashboard session asked the assistant and what it answered, so the console shows
the conversation so far, not only the last reply.

Kept in the store (``assistant_exchanges``), per session (the conversation's key: the hash of
the session's id, so each sign-in starts afresh and signing out forgets it), the newest
``per_session`` exchanges each. In the database rather than the server's memory, a restart
keeps the conversation, and every server process behind a load balancer shows the same one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlwarden.clock import utcnow
from mlwarden.store import Store
from mlwarden.store.assistant import AssistantExchange
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


def _shown(stored: AssistantExchange) -> Exchange:
    return Exchange(
        at=stored.at.strftime("%Y-%m-%d %H:%M"),
        text=stored.text,
        status=stored.status,
        message=stored.message,
        url=stored.url,
        label=stored.label,
    )


class AssistantHistories:
    """The exchanges of every dashboard session with the assistant, oldest first per session."""

    def __init__(self, store: Store, per_session: int = 50) -> None:
        self.store = store
        self.per_session = per_session

    def add(self, key: str, text: str, reply: dict[str, Any]) -> Exchange:
        """Record ``reply`` (an assistant reply as a dict) to ``text`` in ``key``'s history."""
        result = reply.get("result") or {}
        url = result.get("url") if isinstance(result, dict) else None
        label = None
        if url:
            dataset = result.get("dataset") or {}
            label = f"{dataset.get('name')} v{dataset.get('version')} ({result.get('format')})"
        exchange = AssistantExchange(
            at=utcnow(),
            text=text[:MAX_TEXT],
            status=str(reply.get("status", "")),
            message=str(reply.get("message", ""))[:MAX_TEXT],
            url=url,
            label=label,
        )
        self.store.add_assistant_exchange(key, exchange, keep=self.per_session)
        return _shown(exchange)

    def of(self, key: str) -> list[Exchange]:
        """``key``'s exchanges, oldest first."""
        return [_shown(e) for e in self.store.assistant_exchanges(key, self.per_session)]


def histories_of(state: Any) -> AssistantHistories:
    """The histories of the server whose :class:`~mlwarden.api.deps.ServerState` is ``state``
    (made on first use), kept in its store."""
    return kept_on(state, "_ui_assistant_histories", lambda: AssistantHistories(state.store))
