"""``frozen_heap``: what a process holds when it starts long work, left out of its collections.

A full garbage collection walks every object the collector tracks. A process with scikit-learn,
pandas, SciPy, SQLAlchemy and its store loaded tracks about 230,000 of them before it serves a
request or streams a record, and those live as long as the process: walking them again on
every full collection is pure cost (90-105 ms a collection on a server,
docs/benchmarks.md, "A full garbage collection while serving"). ``gc.freeze`` moves every
tracked object into a permanent generation that collections skip; ``gc.unfreeze`` returns them.
(``gc.freeze`` was added in Python 3.7 for long-lived servers: the Python documentation's
``gc`` module; Instagram's "Dismissing Python Garbage Collection at Instagram", 2017.)

>>> import gc
>>> with frozen_heap():
...     gc.get_freeze_count() > 0
True
>>> gc.get_freeze_count()
0
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["freeze", "frozen_heap", "unfreeze"]


def freeze() -> None:
    """Collect what is garbage now, then freeze every object still tracked."""
    gc.collect()
    gc.freeze()


def unfreeze() -> None:
    """Return the frozen objects to the collector (into its oldest generation)."""
    gc.unfreeze()


@contextmanager
def frozen_heap(young: int | None = None) -> Iterator[None]:
    """The objects alive on entry left out of every collection until the block ends.

    ``young``: meanwhile, the youngest generation is collected once this many more objects
    were made than freed, instead of the interpreter's 700. Batch work that makes and drops
    many short-lived containers (rows as dicts, tuples) then collects a few dozen times
    instead of a thousand: most of them are gone before any pass walks them. (A simulation of
    40,000 records: 24 passes instead of 917, 0.07-0.10 s instead of 0.17-0.18 s CPU;
    docs/benchmarks.md.)

    The freeze and the threshold are the process's: work in other threads meanwhile runs
    with them too, and a block nested in another ends the outer one's on its exit.

    >>> import gc
    >>> before = gc.get_threshold()
    >>> with frozen_heap(young=10_000):
    ...     gc.get_threshold()[0]
    10000
    >>> gc.get_threshold() == before
    True
    """
    thresholds = gc.get_threshold()
    freeze()
    if young is not None:
        gc.set_threshold(young, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        unfreeze()
