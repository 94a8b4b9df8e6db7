"""Detectors register themselves here; the monitor runs what is registered.

A detector is one module of ``detect/`` holding a :class:`~mlwarden.detect.base.Detector`
subclass decorated with :func:`register`. The class says what it reports (``kinds``), what it
looks at (``stage``, ``needs``), which settings of a policy's ``detection`` section it reads
(``settings``), and how it is built from them (``from_settings``). The monitor engine builds every
registered detector once per model and runs them per window in :func:`registered` order; nothing
else names them. In the style of NannyML's method factory, and checked the way River's and
scikit-learn's common checks are: ``tests/detect/test_detector_contract.py`` runs every registered
detector on the same clean and faulty windows.

The finding kinds are described once, in :data:`FINDING_KINDS`; ``docs/architecture.md`` holds the
same table and a test keeps the two equal.

>>> [spec.name for spec in registered()][:4]
['feature_drift', 'text_drift', 'domain_classifier', 'data_quality']
>>> FINDING_KINDS[FindingKind.FRESHNESS].split(":")[0]
'data arrives late or not at all'
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from mlwarden.detect.base import Detector, DetectorContext
from mlwarden.domain import FindingKind
from mlwarden.errors import InvalidInput

__all__ = ["FINDING_KINDS", "build_all", "finding_kinds_table", "register", "registered"]


FINDING_KINDS: dict[FindingKind, str] = {
    FindingKind.DATA_DRIFT: "the inputs moved: a feature's distribution, or their joint "
    "distribution, differs from the reference",
    FindingKind.CONCEPT_DRIFT: "the model got worse: measured or estimated performance dropped "
    "(the monitor attributes the drop to the inputs when they moved)",
    FindingKind.PREDICTION_DRIFT: "the outputs moved: predicted classes, values or confidence "
    "differ from the reference, or collapsed onto a constant",
    FindingKind.DATA_QUALITY: "the inputs are broken: nulls, non-finite or out-of-range values, "
    "unseen categories, a changed unit or type, a missing column; also a detector that failed "
    "on the window",
    FindingKind.LATENCY: "answers are slow: p99 latency above the SLO or the baseline",
    FindingKind.ERROR_RATE: "requests fail: the error rate rose above the baseline",
    FindingKind.FRESHNESS: "data arrives late or not at all: an empty window, a delay above the "
    "limit, a silent stream",
    FindingKind.ANOMALY: "a signal is unusual: throughput fell, a rule on signals fired, or the "
    "vector of signals is far from its history",
}


_REGISTRY: dict[str, type[Detector]] = {}
_DETECTOR = TypeVar("_DETECTOR", bound=type[Detector])


def register(cls: _DETECTOR) -> _DETECTOR:
    """Class decorator: add a detector to the registry (its name must be new)."""
    unknown = [k for k in cls.kinds if k not in FINDING_KINDS]
    if not cls.kinds or unknown:
        raise InvalidInput(
            f"detector {cls.name!r} declares no kind or an undescribed one: {unknown}"
        )
    known = _REGISTRY.get(cls.name)
    if known is not None and known is not cls:
        raise InvalidInput(f"two detectors are named {cls.name!r}: {known} and {cls}")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> list[type[Detector]]:
    """Every registered detector, in the order the monitor runs them: by stage, then ``order``.

    Every module of ``mlwarden.detect`` is imported first, so a detector registers itself by
    being in the package: there is no list to edit.
    """
    _import_detector_modules()
    return sorted(_REGISTRY.values(), key=lambda cls: (cls.stage, cls.order, cls.name))


def _import_detector_modules() -> None:
    package = importlib.import_module("mlwarden.detect")
    for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
        importlib.import_module(f"mlwarden.detect.{module}")


def build_all(
    settings: Mapping[str, Any],
    context: DetectorContext,
    include: Callable[[type[Detector]], bool] = lambda _: True,
) -> list[Detector]:
    """One instance of every registered detector that its settings turn on, in run order."""
    built = [cls.from_settings(settings, context) for cls in registered() if include(cls)]
    return [d for d in built if d is not None]


def finding_kinds_table() -> str:
    """The finding kinds as the Markdown table of ``docs/architecture.md``: each kind, what it
    means, and the registered detectors that report it."""
    rows = ["| kind | what it means | registered detectors |", "|---|---|---|"]
    for kind, meaning in FINDING_KINDS.items():
        names = ", ".join(f"`{cls.name}`" for cls in registered() if kind in cls.kinds)
        rows.append(f"| `{kind.value}` | {meaning} | {names or '-'} |")
    return "\n".join(rows)
