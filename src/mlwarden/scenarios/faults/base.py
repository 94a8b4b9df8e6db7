"""The contract of a fault kind: what it needs, what it changes, and how.

A fault is injected where it happens in production, and each place is a hook of
:class:`InjectedFault`; a kind implements the hooks of its ``effects`` and inherits no-ops for
the others. The simulator and the demo call the same hooks, so a fault behaves the same in both:

- ``ROWS``, ``LABELS``: :meth:`~InjectedFault.rows`, on the stream's rows (covariate_shift,
  null_burst, unit_change, category_new, concept_change, label_shift);
- ``REQUESTS``: :meth:`~InjectedFault.request`, on one request as sent (schema_break);
- ``ANSWERS``: :meth:`~InjectedFault.serve`, what the faulty model server answers (errors,
  prediction_freeze);
- ``LATENCY``: :meth:`~InjectedFault.added_latency_ms` (latency);
- ``ARRIVAL``: :meth:`~InjectedFault.arrival_delay_s` (arrival_delay);
- ``RATE``: :meth:`~InjectedFault.rate_factor` (traffic_surge);
- ``RELEASE``: :meth:`~InjectedFault.releases_at`, a bad version deployed (bad_deploy).

Serving faults (answers, latency) hit the model server of the version live when the run starts;
a fallback or a rollback escapes them, as it would a broken model server. ``unattended`` says
what the stream is answered with when nobody acts (the doing-nothing baseline of a score).

The scenario's fault (``spec.Fault``: kind, period, parameters) is not imported here: the spec
imports this package to check a fault's kind and parameters, so the parameters arrive as the
object ``spec`` holds (:data:`FaultSpec`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mlwarden.serving.predictors import Prediction

# the scenario's ``spec.Fault``: ``kind``, ``start``, ``end`` and the kind's parameters
FaultSpec = Any


class Effect(StrEnum):
    """What a fault changes; each effect is one hook of :class:`InjectedFault`."""

    ROWS = "rows"  # the features of the stream's rows
    LABELS = "labels"  # the labels that arrive later
    REQUESTS = "requests"  # the shape of a request as the client sends it
    ANSWERS = "answers"  # what the faulty model server answers (or that it fails)
    LATENCY = "latency"  # how long the faulty model server takes
    ARRIVAL = "arrival"  # how late records reach the monitor
    RATE = "rate"  # how many requests arrive per second
    RELEASE = "release"  # a bad version deployed by someone else


@dataclass
class Serving:
    """What a serving fault knows of the run: the seed, and the reference's majority class
    (what a frozen classifier answers unless the fault names a constant)."""

    seed: int = 0
    majority: Any = None

    def fails(self, position: int, rate: float) -> bool:
        """Whether the call for the batch at ``position`` fails at ``rate``: a function of the
        seed and the position, not a draw from a shared generator, so the doing-nothing
        baseline replays the same failures without running the stream, and the demo's model
        server fails on the batches the simulator's predictor fails on."""
        return random.Random(f"{self.seed}:{position}").random() < rate


@dataclass
class Unattended:
    """What the doing-nothing baseline is computed from: the stream's inputs, the batch size
    (failures hit whole batches), the versions' fitted estimators (the bad release's, when a
    fault makes one, and the fallback's) and the serving context."""

    inputs: pd.DataFrame
    batch: int
    serving: Serving
    bad: Any = None
    fallback: Any = None


class InjectedFault:
    """One fault kind. Subclasses set ``kind``, ``effects`` and ``needs`` (the parameters of
    ``spec.Fault`` a scenario must give), and implement the hooks of their effects."""

    kind: ClassVar[str]
    effects: ClassVar[frozenset[Effect]]
    needs: ClassVar[tuple[str, ...]] = ()
    # release: whether the run must train a deliberately bad version for it
    needs_bad_version: ClassVar[bool] = False

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec

    @classmethod
    def check(cls, spec: FaultSpec) -> str | None:
        """A problem with the parameters beyond a missing one (None when they hold)."""
        return None

    # ------------------------------------------------------------------ where it is active

    def active(self, position: int) -> bool:
        """Whether the fault is active at stream ``position`` (records [start, end))."""
        spec = self.spec
        return bool(position >= spec.start and (spec.end is None or position < spec.end))

    def mask(self, length: int) -> np.ndarray:
        """Boolean mask of the stream positions 0..length-1 where the fault is active."""
        positions = np.arange(length)
        end = length if self.spec.end is None else min(self.spec.end, length)
        return (positions >= self.spec.start) & (positions < end)

    # ------------------------------------------------------------------ the hooks

    def rows(
        self,
        frame: pd.DataFrame,
        reference: pd.DataFrame,
        mask: np.ndarray,
        target: str,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        """ROWS, LABELS: the stream (positions 0..n-1) with the fault applied where ``mask``."""
        return frame

    def request(self, instance: dict[str, Any], draw: Callable[[], float]) -> dict[str, Any]:
        """REQUESTS: the instance as the client sends it while the fault is active; ``draw``
        gives a uniform number in [0, 1) from the run's generator."""
        return instance

    def serve(
        self, position: int, answer: Callable[[], list[Prediction]], serving: Serving
    ) -> list[Prediction] | None:
        """ANSWERS: what the faulty model server answers for the batch at ``position`` while
        the fault is active (``answer()`` is the healthy model's answer); raising
        :class:`~mlwarden.serving.predictors.PredictionError` is a failed call; None leaves the
        call to the next fault, or to the healthy model."""
        return None

    def added_latency_ms(self, rng: random.Random) -> float:
        """LATENCY: milliseconds the faulty model server adds to one answer."""
        return 0.0

    def arrival_delay_s(self) -> float:
        """ARRIVAL: seconds a record reaches the monitor after it was made."""
        return 0.0

    def rate_factor(self) -> float:
        """RATE: the factor on the scenario's request rate."""
        return 1.0

    def releases_at(self, position: int, batch: int) -> bool:
        """RELEASE: whether the batch of ``batch`` records at ``position`` is when the bad
        version is deployed."""
        return False

    def unattended(self, answers: np.ndarray, active: np.ndarray, run: Unattended) -> None:
        """The doing-nothing answers (one per stream position, None for none) with the fault's
        serving effect where ``active``, changed in place. Faults on the data change nothing
        here: the answers are already the champion's on the faulty stream."""


def frozen(answer: Prediction, constant: Any) -> Prediction:
    """``answer`` as a model stuck on ``constant`` gives it (its probabilities all on it)."""
    scores = answer.probabilities
    if isinstance(scores, dict):
        scores = {k: (1.0 if str(k) == str(constant) else 0.0) for k in scores}
    return Prediction(prediction=constant, probabilities=scores, score=answer.score)


__all__ = [
    "Effect",
    "FaultSpec",
    "InjectedFault",
    "Serving",
    "Unattended",
    "frozen",
]
