"""The shared shape of a detector: a name, what it reports, what it needs, and one method.

In the style of River's drift detectors: one small class per idea, configured in ``__init__``,
with no hidden state between calls unless the detector is explicitly streaming. A detector turns
the reference profile and one window's profile into a list of :class:`~mlwarden.domain.Finding`
(empty when all is well). The monitor calls :meth:`Detector.run` with a
:class:`~mlwarden.detect.registry.WindowInputs`; by default it calls :meth:`Detector.detect` on
the two profiles. Detectors that need more (raw rows, the window's signals) override ``run``,
declare it in ``needs``, and still return Findings. ``detect.registry`` says how a detector
registers itself.

>>> from mlwarden.domain import FindingKind
>>> class Never(Detector):
...     name = "never"
...     kind = FindingKind.ANOMALY
...     def detect(self, reference, window, *, window_index=None):
...         return []
>>> Never().detect(None, None), Never.kinds
([], (<FindingKind.ANOMALY: 'anomaly'>,))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from mlwarden.domain import FindingKind

if TYPE_CHECKING:
    from typing import Self

    import pandas as pd

    from mlwarden.domain import Finding, ModelSpec
    from mlwarden.stats.profile import Profile

__all__ = [
    "Detector",
    "DetectorContext",
    "DetectorOutput",
    "Input",
    "Stage",
    "WindowInputs",
    "fmt_p",
    "fmt_rows",
]


class Stage(IntEnum):
    """What part of a window a detector looks at; the monitor runs the stages in this order
    (inputs first, so later stages know whether the inputs moved)."""

    INPUTS = 1
    OUTPUTS = 2
    SERVICE = 3


class Input(StrEnum):
    """What a detector needs of the window, beyond the window's index."""

    PROFILES = "profiles"  # the reference profile and the window's profile
    SAMPLES = "samples"  # raw rows: a capped sample of the reference and the window's rows
    SIGNALS = "signals"  # the window's signals so far (latency, error rate, delay, ...)
    EARLIER_FINDINGS = "earlier_findings"  # what the detectors before it found on the window


@dataclass
class DetectorContext:
    """What a detector may be built from, besides its settings: known once per model (the
    system baseline may be re-learned later, so detectors read it at run time)."""

    spec: ModelSpec | None = None
    # raw reference rows of the features, for detectors that need samples (capped by the monitor)
    reference_sample: pd.DataFrame | None = None
    # the system signals' baseline (``detect.system.SystemBaseline``) measured on the reference
    system_baseline: Any = None


@dataclass
class WindowInputs:
    """Everything a detector may read of one window; each reads what its ``needs`` declare."""

    reference: Profile
    window: Profile
    index: int | None = None
    window_frame: pd.DataFrame | None = None
    signals: Mapping[str, float | None] = field(default_factory=dict)
    earlier_findings: list[Finding] = field(default_factory=list)


@dataclass
class DetectorOutput:
    """Findings of one run, and the signals it measured on the way (stored per window)."""

    findings: list[Finding]
    signals: dict[str, Any] = field(default_factory=dict)


class Detector:
    """Base of every detector: ``run(inputs) -> DetectorOutput``, by default ``detect`` on the
    two profiles."""

    name: ClassVar[str] = "detector"
    # the kind of its findings; ``kinds`` when it reports several (set from ``kind`` otherwise)
    kind: ClassVar[FindingKind]
    kinds: ClassVar[tuple[FindingKind, ...]] = ()
    stage: ClassVar[Stage] = Stage.INPUTS
    # position within its stage (lower runs first)
    order: ClassVar[int] = 50
    needs: ClassVar[frozenset[Input]] = frozenset({Input.PROFILES})
    # the keys of a policy's ``detection`` section it reads (``monitor.config.MonitorConfig``)
    settings: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kinds" not in cls.__dict__ and "kind" in cls.__dict__:
            cls.kinds = (cls.kind,)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], context: DetectorContext) -> Self | None:
        """The detector as a policy configures it, or None when the policy turns it off."""
        return cls()

    def run(self, inputs: WindowInputs) -> DetectorOutput:
        """What the monitor calls per window."""
        return DetectorOutput(
            self.detect(inputs.reference, inputs.window, window_index=inputs.index)
        )

    def detect(
        self, reference: Profile, window: Profile, *, window_index: int | None = None
    ) -> list[Finding]:
        """Compare one window with the reference; return what is wrong (nothing when healthy)."""
        raise NotImplementedError(f"{type(self).__name__} overrides run(), not detect()")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def fmt_p(p: float) -> str:
    """A p-value for a one-line message: ``p=0.003`` or ``p<1e-6``."""
    if p < 1e-6:
        return "p<1e-6"
    if p < 1e-3:
        return f"p={p:.1e}"
    return f"p={p:.3f}"


def fmt_rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")
