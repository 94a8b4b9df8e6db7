"""Every finding kind is known wherever kinds are looked up, so a new kind added to
``domain.FindingKind`` cannot reach a layer that would fail on it (a ``KeyError`` in the middle
of an agent pass). Its description is written once, in ``detect.registry.FINDING_KINDS``; the
agent's incident scope and the diagnosis's causal order are each layer's own judgement of it."""

from __future__ import annotations

from mlwarden.agent.incidents import _SCOPE_OF_KIND, SCOPE_ORDER
from mlwarden.detect.registry import FINDING_KINDS, registered
from mlwarden.diagnose.incident import CAUSAL_ORDER
from mlwarden.domain import FindingKind


def test_every_finding_kind_is_described_scoped_and_ordered() -> None:
    kinds = set(FindingKind)
    assert set(FINDING_KINDS) == kinds
    assert all(FINDING_KINDS[k].strip() for k in kinds)
    assert set(_SCOPE_OF_KIND) == kinds
    assert set(_SCOPE_OF_KIND.values()) <= set(SCOPE_ORDER)
    assert set(CAUSAL_ORDER) == kinds


def test_every_kind_a_registered_detector_reports_is_described() -> None:
    reported = {kind for cls in registered() for kind in cls.kinds}
    assert reported <= set(FINDING_KINDS)
    assert FindingKind.DATA_DRIFT in reported
