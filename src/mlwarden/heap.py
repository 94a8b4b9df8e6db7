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
def frozen_heap() -> Iterator[None]:
    """The objects alive on entry left out of every collection until the block ends.

    The freeze is the process's: work in other threads meanwhile runs with it too, and a
    block nested in another unfreezes the outer one's objects on its exit."""
    freeze()
    try:
        yield
    finally:
        unfreeze()
