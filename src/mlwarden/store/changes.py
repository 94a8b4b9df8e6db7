"""Change notifications between replicas: PostgreSQL ``LISTEN``/``NOTIFY``.

Every write of a model, a deployment revision or an API token sends a notification on
:data:`CHANNEL` once its transaction commits (a trigger of migration 0009), so a replica's
caches follow a change made through any other replica, the agent or plain SQL, at once and
without asking the database every second. :class:`ChangeListener` holds one dedicated
connection that listens, and calls

- ``on_change(kind, name)`` for each notification (``"model"`` or ``"token"`` and the name);
- ``on_reset()`` each time it (re)connects: notifications sent while it was not listening are
  lost, so whatever was cached before must be read again;
- ``on_lost()`` when the connection is lost: until it is back, caches must poll.

SQLite has no notifications; its single server process keeps polling (``Store.notifies`` is
False).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.engine import URL

__all__ = ["CHANNEL", "ChangeListener", "parse"]

log = logging.getLogger(__name__)

CHANNEL = "mlwarden_changes"


def parse(payload: str) -> tuple[str, str] | None:
    """``"model:elec"`` -> ``("model", "elec")``; None for a payload this version does not know.

    >>> parse("token:ci-bot")
    ('token', 'ci-bot')
    >>> parse("nonsense") is None
    True
    """
    kind, sep, name = payload.partition(":")
    if not sep or kind not in {"model", "token"}:
        return None
    return kind, name


class ChangeListener:
    """Listens on :data:`CHANNEL` in a daemon thread until :meth:`stop`; reconnects after
    ``retry_s`` when the connection is lost (and calls ``on_reset`` once it is back)."""

    def __init__(
        self,
        url: URL,
        on_change: Callable[[str, str], None],
        on_reset: Callable[[], None],
        on_lost: Callable[[], None] | None = None,
        *,
        retry_s: float = 1.0,
        poll_s: float = 0.1,
    ) -> None:
        # psycopg takes the URL without SQLAlchemy's driver suffix
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.on_change = on_change
        self.on_reset = on_reset
        self.on_lost = on_lost
        self.retry_s = retry_s
        self.poll_s = poll_s  # how long a wait for notifications lasts before `stop` is checked
        self.listening = threading.Event()  # set while a connection listens
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlw-listen", daemon=True)

    def start(self, timeout_s: float = 5.0) -> ChangeListener:
        """Start listening; waits up to ``timeout_s`` for the first connection (a database down
        at start is retried in the background, and the caches poll meanwhile)."""
        self._thread.start()
        self.listening.wait(timeout_s)
        return self

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._safe(self.on_reset)
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=self.poll_s):
                            found = parse(note.payload)
                            if found is not None:
                                self._safe(self.on_change, *found)
            except Exception as exc:
                if self._stop.is_set():
                    break
                log.warning(
                    "change notifications lost (%s); reconnecting in %.1f s", exc, self.retry_s
                )
            finally:
                if self.listening.is_set():
                    self.listening.clear()
                    if self.on_lost is not None:
                        self._safe(self.on_lost)
            self._stop.wait(self.retry_s)

    @staticmethod
    def _safe(callback: Callable[..., None], *args: str) -> None:
        # a failing callback must not stop the notifications of everything else
        try:
            callback(*args)
        except Exception:
            log.exception("a change notification handler failed")

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
