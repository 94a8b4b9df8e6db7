"""The shared shape of a detector: a name, a finding kind, and one method.

In the style of River's drift detectors: one small class per idea, configured in ``__init__``,
with no hidden state between calls unless the detector is explicitly streaming. A detector turns
the reference profile and one window's profile into a list of :class:`~mlwarden.domain.Finding`
(empty when all is well). Detectors that need raw rows rather than profiles (the domain
classifier) or per-record streams add their own entry point but still return Findings.

>>> from mlwarden.domain import FindingKind
>>> class Never(Detector):
...     name = "never"
...     kind = FindingKind.ANOMALY
...     def detect(self, reference, window, *, window_index=None):
...         return []
>>> Never().detect(None, None)
[]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from mlwarden.domain import FindingKind

if TYPE_CHECKING:
    from mlwarden.domain import Finding
    from mlwarden.stats.profile import Profile

__all__ = ["Detector", "fmt_p", "fmt_rows"]


class Detector(ABC):
    """Base of every detector: ``detect(reference, window) -> list[Finding]``."""

    name: ClassVar[str] = "detector"
    kind: ClassVar[FindingKind]

    @abstractmethod
    def detect(
        self, reference: Profile, window: Profile, *, window_index: int | None = None
    ) -> list[Finding]:
        """Compare one window with the reference; return what is wrong (nothing when healthy)."""

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
