"""The one clock of mlwarden: every timestamp it writes comes from ``utcnow``.

It sits in the foundation, importing nothing of mlwarden, because every layer stamps times
(records, windows, deployments, journal entries, sessions) and a simulation must move all of
them together: ``simulated_clock`` swaps the clock for the length of a ``with`` block.

>>> from datetime import UTC, datetime
>>> with simulated_clock(lambda: datetime(2026, 1, 1, tzinfo=UTC)):
...     utcnow().isoformat()
'2026-01-01T00:00:00+00:00'
>>> as_utc(datetime(2026, 1, 1, 12)).isoformat()
'2026-01-01T12:00:00+00:00'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_ZERO = timedelta(0)

_clock: Callable[[], datetime] | None = None


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (a simulation's clock while one is running)."""
    return _clock() if _clock is not None else datetime.now(UTC)


@contextmanager
def simulated_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    """Make every timestamp mlwarden writes come from ``clock`` (``mlwarden simulate`` runs
    minutes of traffic in seconds; deployments, events and journal entries must share its
    time with the records and windows)."""
    global _clock
    previous, _clock = _clock, clock
    try:
        yield
    finally:
        _clock = previous


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already (that is how we store)."""
    tz = value.tzinfo
    if tz is UTC:
        return value
    if tz is None:
        return value.replace(tzinfo=UTC)
    if tz.utcoffset(value) == _ZERO:  # e.g. ZoneInfo("UTC") from Polars: cheaper than astimezone
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
