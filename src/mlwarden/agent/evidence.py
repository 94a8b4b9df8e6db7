"""Remedies chosen on evidence: every candidate scored on the incident's own records first.

A decision table maps a diagnosis to a remedy, but whether the remedy helps depends on the
data at hand: a fallback model can answer a null burst worse than the champion does with the
nulls; a disabled model refuses every request where the broken one refused half. So before a
deployment remedy runs, each option is scored on the labelled records of the incident's
windows that are already stored (off-policy evaluation on logged traffic: replay the logged
inputs through each candidate and compare with the delayed labels; see e.g. L. Li et al.,
"Unbiased offline evaluation of contextual-bandit-based news article recommendation
algorithms", WSDM 2011, for the replay idea):

* ``keep`` (doing nothing): the answers that were actually served, as recorded (so a frozen
  or badly deployed version is judged on what it really answered), failed requests included;
* a version (fallback, rollback target, staged candidate): its own answers to the same inputs;
* ``disable``: every request refused.

A refused or failed request is a wrong answer (classification) or costs the error of
answering the labels' mean (regression) unless the policy says a refusal is worth more than a
wrong answer (``evidence.refusal_better_than_wrong``: half a right answer). Scores are higher
is better: accuracy, or minus the RMSE.

>>> from mlwarden.domain import Task
>>> rows = [{"features": {"x": 1.0}, "prediction": 1, "label": 1, "error": None},
...         {"features": {"x": 2.0}, "prediction": 0, "label": 1, "error": None},
...         {"features": {"x": 3.0}, "prediction": None, "label": 0, "error": "timeout"}]
>>> served_score(Task.CLASSIFICATION, rows).value  # one right of three; the failure is wrong
0.3333333333333333
>>> refused_score(Task.CLASSIFICATION, rows).value
0.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlwarden.domain import ModelSpec, Task
from mlwarden.stats.performance import canonical_labels

Row = Mapping[str, Any]
Answer = Callable[[Sequence[Mapping[str, Any]]], list[Any]]


@dataclass(frozen=True)
class OptionScore:
    """How one option would have served the incident's labelled records."""

    option: str  # "keep", "fallback", "rollback", "disable", "repair", ...
    value: float  # higher is better: accuracy, or minus the RMSE
    metric: str  # "accuracy" or "rmse"
    labelled: int
    failures: int
    version: int | None = None
    note: str = ""
    # each labelled record's share of the score (1/0 right, or minus the squared error), in the
    # records' order: two options scored on the same records are compared pair by pair
    per_row: tuple[float, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def shown(self) -> float:
        """The metric as people read it (RMSE positive)."""
        return -self.value if self.metric == "rmse" else self.value

    def describe(self) -> str:
        who = f" (version {self.version})" if self.version is not None else ""
        failed = f", {self.failures} refused or failed" if self.failures else ""
        note = f"; {self.note}" if self.note else ""
        return (
            f"{self.option}{who}: {self.metric} {self.shown:.4f} on {self.labelled} labelled "
            f"records{failed}{note}"
        )


@dataclass
class Weighing:
    """The scores of every option and the one chosen."""

    scores: list[OptionScore] = field(default_factory=list)
    chosen: str = "keep"
    reason: str = ""

    def of(self, option: str) -> OptionScore | None:
        return next((s for s in self.scores if s.option == option), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "reason": self.reason,
            "scores": [
                {
                    "option": s.option,
                    "version": s.version,
                    "metric": s.metric,
                    "value": round(s.shown, 6),
                    "labelled": s.labelled,
                    "failures": s.failures,
                    "note": s.note,
                }
                for s in self.scores
            ],
        }


def _metric(task: Task) -> str:
    return "rmse" if task is Task.REGRESSION else "accuracy"


def _score(
    task: Task,
    labels: Sequence[Any],
    answers: Sequence[Any],
    failed: Sequence[bool],
    refusal_credit: float = 0.0,
) -> tuple[float, int, tuple[float, ...]]:
    """(score, failures, per row): accuracy or minus the RMSE of ``answers``, with each row's
    share (right or not, minus its squared error); failed rows cost as the module docstring
    says."""
    failures = int(sum(failed))
    if task is Task.REGRESSION:
        truth = np.array([float(v) for v in labels], dtype=float)
        mean = float(truth.mean()) if len(truth) else 0.0
        guess = np.array(
            [mean if bad else _as_float(a, mean) for a, bad in zip(answers, failed, strict=True)]
        )
        squared = (truth - guess) ** 2
        value = -float(np.sqrt(np.mean(squared))) if len(truth) else 0.0
        return value, failures, tuple((-squared).tolist())
    # each distinct label and answer spelled once (a stream holds a handful, many times over)
    spelled = zip(canonical_labels(answers), canonical_labels(labels), failed, strict=True)
    right = [refusal_credit if bad else float(a == y) for a, y, bad in spelled]
    return (float(np.mean(right)) if right else 0.0), failures, tuple(right)


def _as_float(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def labelled(rows: Sequence[Row]) -> list[Row]:
    """The rows whose label has arrived."""
    return [r for r in rows if r.get("label") is not None]


def served_score(task: Task, rows: Sequence[Row], option: str = "keep") -> OptionScore:
    """Doing nothing: the answers as they were served (a failed request is a failure)."""
    rows = labelled(rows)
    failed = [bool(r.get("error")) or r.get("prediction") is None for r in rows]
    value, failures, per_row = _score(
        task, [r["label"] for r in rows], [r.get("prediction") for r in rows], failed
    )
    return OptionScore(option, value, _metric(task), len(rows), failures, per_row=per_row)


def refused_score(
    task: Task, rows: Sequence[Row], refusal_better_than_wrong: bool = False
) -> OptionScore:
    """A disabled model: every request refused."""
    rows = labelled(rows)
    failed = [True] * len(rows)
    credit = 0.5 if refusal_better_than_wrong else 0.0
    value, failures, per_row = _score(
        task, [r["label"] for r in rows], [None] * len(rows), failed, credit
    )
    return OptionScore("disable", value, _metric(task), len(rows), failures, per_row=per_row)


def answered_score(
    task: Task,
    spec: ModelSpec,
    rows: Sequence[Row],
    answer: Answer,
    option: str,
    version: int | None = None,
    note: str = "",
    prepare: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> OptionScore:
    """A version's own answers to the logged inputs, mended first by ``prepare`` when given
    (an input repair). A row still missing one of the model's features (the gateway refused
    it) stays a failure: no version could have answered it."""
    rows = labelled(rows)
    names = spec.feature_names
    features = [dict(r.get("features") or {}) for r in rows]
    if prepare is not None:
        features = prepare(features)
    complete = [all(n in f for n in names) for f in features]
    inputs = [f for f, ok in zip(features, complete, strict=True) if ok]
    answers_iter = iter(answer(inputs) if inputs else [])
    answers = [next(answers_iter) if ok else None for ok in complete]
    failed = [not ok for ok in complete]
    value, failures, per_row = _score(task, [r["label"] for r in rows], answers, failed)
    return OptionScore(
        option, value, _metric(task), len(rows), failures, version, note, per_row=per_row
    )


def margin(keep: OptionScore, tolerance: float) -> float:
    """How far from doing nothing an option still counts as no different: ``tolerance`` itself
    for accuracy, a share of doing nothing's RMSE for regression."""
    return tolerance * abs(keep.value) if keep.metric == "rmse" else tolerance


def answerable_refusals(
    spec: ModelSpec,
    refused: Sequence[Row],
    prepare: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> int:
    """How many of the ``refused`` requests a version could answer once ``prepare`` (an input
    repair) mended them: every feature of the model present and no other key, as the gateway's
    schema check asks."""
    inputs = [dict(r.get("features") or {}) for r in refused]
    if prepare is not None:
        inputs = prepare(inputs)
    names = spec.feature_names
    known = set(names)
    return sum(all(n in f for n in names) and set(f) <= known for f in inputs)


def refused_unlabelled(rows: Sequence[Row]) -> list[Row]:
    """Requests refused before any version was called (a schema break: missing or unknown
    fields), logged with their error, no version and no answer. They never get a label, yet
    doing nothing keeps refusing them, while a remedy that makes them answerable would answer
    them. (A version's failed attempt names its version: the fallback may have answered it.)"""
    return [
        r
        for r in rows
        if r.get("error")
        and r.get("version") is None
        and r.get("prediction") is None
        and r.get("label") is None
    ]


def with_refusals(
    score: OptionScore,
    refused: int,
    answerable: int,
    refusal_credit: float = 0.0,
) -> OptionScore:
    """``score`` over the labelled records widened to the ``refused`` unlabelled requests too,
    of which the option would answer ``answerable``: each answered one counts what the option
    scores on the labelled records, each still refused one as a refusal (accuracy only; RMSE
    has no such mixture and is returned as it is).

    >>> base = OptionScore("repair", 0.7, "accuracy", labelled=300, failures=0)
    >>> round(with_refusals(base, refused=100, answerable=100).value, 4)
    0.7
    >>> round(with_refusals(base, refused=100, answerable=0).value, 4)  # doing nothing
    0.525
    """
    if refused <= 0 or score.metric != "accuracy":
        return score
    total = score.labelled + refused
    value = (
        score.value * (score.labelled + answerable) + refusal_credit * (refused - answerable)
    ) / total
    note = f"{answerable} of {refused} refused requests answered"
    return OptionScore(
        score.option,
        value,
        score.metric,
        score.labelled,
        score.failures + refused - answerable,
        score.version,
        f"{score.note}; {note}" if score.note else note,
        per_row=score.per_row,
    )


def noise(option: OptionScore, keep: OptionScore) -> float:
    """The standard error of ``option``'s score minus doing nothing's, from their differences
    record by record on the same labelled records (0 when they were not scored row by row on
    the same records). For RMSE, the error of the difference of mean squared errors carried to
    the RMSE's scale (delta method: a change of MSE by e moves the RMSE by e / (2 RMSE)).

    >>> keep = OptionScore("keep", 0.5, "accuracy", 4, 0, per_row=(1.0, 0.0, 1.0, 0.0))
    >>> other = OptionScore("fallback", 0.75, "accuracy", 4, 0, per_row=(1.0, 1.0, 1.0, 0.0))
    >>> round(noise(other, keep), 4)  # one record of four answered better
    0.25
    """
    a, b = option.per_row, keep.per_row
    if a is None or b is None or len(a) != len(b) or len(a) < 2:
        return 0.0
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    error = float(np.std(diff, ddof=1) / math.sqrt(len(diff)))
    if keep.metric == "rmse":
        rmse = abs(keep.value)
        return error / (2.0 * rmse) if rmse > 0 else 0.0
    return error


def choose(
    keep: OptionScore,
    options: Sequence[OptionScore],
    preferred: str,
    tolerance: float,
    standard_errors: float = 0.0,
) -> Weighing:
    """The best option, never one worse than doing nothing beyond ``tolerance``.

    ``preferred`` is the policy's remedy: it is kept when no other option beats it by more than
    the tolerance, so the evidence overrules the table only where it clearly disagrees. The
    tolerance is absolute for accuracy and relative to doing nothing's RMSE for regression.
    With ``standard_errors`` > 0 the option must stay within the tolerance once that many
    standard errors of its difference with doing nothing (:func:`noise`) are taken off its
    score: a few thousand labelled records of drifting data tell two models apart only so
    well, and a remedy that scored a little better on the incident's windows served worse on
    the next ones (``elec_latency`` in time order, docs/benchmarks.md).
    """
    scores = [keep, *options]
    same = margin(keep, tolerance)
    preferred_score = next((s for s in options if s.option == preferred), None)
    best = max(options, key=lambda s: s.value, default=None)
    if best is None:
        return Weighing(scores, "keep", "no remedy could be scored")
    if preferred_score is not None and preferred_score.value >= best.value - same:
        best = preferred_score
    if best.value < keep.value - same:
        return Weighing(
            scores,
            "keep",
            f"every remedy serves worse than doing nothing ({keep.describe()}; best: "
            f"{best.describe()})",
        )
    error = noise(best, keep)
    if best.value - standard_errors * error < keep.value - same:
        return Weighing(
            scores,
            "keep",
            f"no remedy is surely no worse than doing nothing ({keep.describe()}; best: "
            f"{best.describe()}; {standard_errors:g} standard errors of the difference, "
            f"{standard_errors * error:.4f}, reach below the tolerance)",
        )
    if best.value <= keep.value + same and best.option != preferred:
        return Weighing(
            scores,
            "keep",
            f"no remedy is clearly better than doing nothing ({keep.describe()}; best: "
            f"{best.describe()})",
        )
    return Weighing(
        scores, best.option, f"{best.describe()}, against doing nothing: {keep.describe()}"
    )


__all__ = [
    "OptionScore",
    "Weighing",
    "answerable_refusals",
    "answered_score",
    "choose",
    "labelled",
    "margin",
    "noise",
    "refused_score",
    "refused_unlabelled",
    "served_score",
    "with_refusals",
]
