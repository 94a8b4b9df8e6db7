"""Fault injection on the rows of a stream, and on the requests a client sends: the hooks of
every registered fault kind applied in the scenario's order.

>>> import pandas as pd
>>> from mlwarden.scenarios.spec import Fault
>>> rows = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
>>> fault = Fault(kind="unit_change", feature="x", factor=100, start=2)
>>> inject(rows, rows, [fault], "y", seed=0)["x"].tolist()
[1.0, 2.0, 300.0, 400.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlwarden.errors import InvalidInput
from mlwarden.scenarios.faults.base import Effect, FaultSpec, InjectedFault
from mlwarden.scenarios.faults.registry import build

_ON_ROWS = {Effect.ROWS, Effect.LABELS}


def inject(
    stream: pd.DataFrame,
    reference: pd.DataFrame,
    faults: Sequence[FaultSpec],
    target: str,
    *,
    seed: int,
) -> pd.DataFrame:
    """A copy of ``stream`` (positions 0..n-1) with every fault on rows or labels applied, in
    the scenario's order, drawing from one generator seeded with ``seed``.

    Faults on requests (a schema break) change what the client sends, not the rows: the
    simulator and the demo apply them to each request (:func:`break_request`)."""
    rng = np.random.default_rng(seed)
    frame = stream.reset_index(drop=True).copy()
    for fault in build(faults):
        if not fault.effects & _ON_ROWS:
            continue
        feature = fault.spec.feature
        if feature is not None and feature not in frame.columns:
            raise InvalidInput(
                f"fault {fault.kind!r}: feature {feature!r} is not a column of the dataset"
            )
        frame = fault.rows(frame, reference, fault.mask(len(frame)), target, rng)
    return frame


def break_request(
    instance: dict[str, Any],
    position: int,
    faults: Sequence[InjectedFault],
    draw: Callable[[], float],
) -> dict[str, Any]:
    """The request for stream ``position`` as the client sends it: every active fault on
    requests applied in turn (each draws from ``draw`` once while active)."""
    for fault in faults:
        if Effect.REQUESTS in fault.effects and fault.active(position):
            instance = fault.request(instance, draw)
    return instance


def active_mask(fault: FaultSpec, length: int) -> np.ndarray:
    """Boolean mask of the stream positions where the scenario's ``fault`` is active."""
    return build([fault])[0].mask(length)
