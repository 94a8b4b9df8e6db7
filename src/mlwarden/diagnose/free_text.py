"""Diagnosis from free text: an engineer's words in, ranked playbooks with severity and steps out
(`mlwarden diagnose`, `POST /v1/diagnose`, the dashboard's diagnose page; once called the
incident assistant, a name the command assistant, `mlwarden.assistant`, now has alone).

Ranking is ``matcher.TextMatcher`` (symptom concepts, BM25 and context words over the
playbooks); facts from the words (``facts.extract_facts``) set each match's severity through
the playbook's escalators. When the best score is too weak the answer says so
(``matched=False``) and carries the generic triage checklist instead of a confident guess.

>>> answer = diagnose_text("p99 went from 200ms to 2s on the scoring endpoint")
>>> answer.matched, answer.matches[0].id, answer.matches[0].severity.value
(True, 'inference_latency_spike', 'critical')
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from mlwarden.diagnose.facts import Facts, escalate, extract_facts
from mlwarden.diagnose.loader import get_playbook, load_playbooks
from mlwarden.diagnose.matcher import Evidence, matcher_for
from mlwarden.diagnose.schema import Playbook
from mlwarden.diagnose.text import MAX_TEXT_CHARS
from mlwarden.domain import Severity
from mlwarden.errors import InvalidInput

# Words shown per match by --explain (the strongest first).
EXPLAIN_WORDS = 8

TRIAGE_CHECKLIST: list[str] = [
    "System first: is the model endpoint up? Error rate and HTTP status codes in the last hour.",
    "Latency p50/p95/p99 of the endpoint and of its dependencies (feature store, databases).",
    "Saturation: CPU, memory, restarts/OOM kills of the serving pods "
    "(kubectl top pod; kubectl get pods).",
    "Traffic volume vs the same hour last week; any client sending unusual load.",
    "Recent changes: deploys, config flags, upstream releases, schema changes "
    "(mlwarden deployments MODEL).",
    "Data: record counts, freshness of the latest data, null and out-of-range rates per feature.",
    "Inputs: drift of the most important features against the reference "
    "(mlwarden signals MODEL --signal drift.psi).",
    "Outputs: prediction distribution, constant predictions, confidence (mean max-probability).",
    "Model metrics on labelled data, or estimated performance while labels are delayed.",
    "Write down the first bad timestamp; everything that changed just before it is a suspect.",
]


class TextMatch(BaseModel):
    """One ranked scenario for a text, with the evidence behind its rank and severity."""

    id: str
    title: str
    severity: Severity
    confidence: float = Field(ge=0, le=1)
    score: float
    checks: list[dict[str, str]]
    causes: list[str]
    actions: list[dict[str, str]]
    severity_reasons: list[str] = Field(default_factory=list)
    explain: list[dict[str, Any]] = Field(default_factory=list)

    def public(self, *, explain: bool = False) -> dict[str, Any]:
        """Exactly the keys of the ``--json`` contract (plus ``explain`` when asked)."""
        out = {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.value,
            "confidence": self.confidence,
            "checks": self.checks,
            "causes": self.causes,
            "actions": self.actions,
        }
        if explain:
            out["explain"] = self.explain
        return out


class TextDiagnosis(BaseModel):
    matched: bool
    matches: list[TextMatch]
    facts: Facts
    triage: list[str] = Field(default_factory=list)

    def public(self, *, explain: bool = False) -> dict[str, Any]:
        """``{"matched": bool, "matches": [...]}`` — the CLI ``--json`` and API contract."""
        return {
            "matched": self.matched,
            "matches": [m.public(explain=explain) for m in self.matches],
        }

    def to_json(self, *, explain: bool = False) -> str:
        return json.dumps(
            self.public(explain=explain), indent=2, sort_keys=False, ensure_ascii=False
        )


def playbook_match(
    playbook: Playbook,
    *,
    facts: Facts | None = None,
    confidence: float = 1.0,
    score: float = 0.0,
    evidence: Iterable[Evidence] = (),
) -> TextMatch:
    """A :class:`TextMatch` for a playbook, its severity escalated by ``facts``."""
    facts = facts or Facts()
    severity, reasons = escalate(playbook, facts)
    return TextMatch(
        id=playbook.id,
        title=playbook.title,
        severity=severity,
        confidence=round(confidence, 3),
        score=round(score, 4),
        checks=[{"title": c.title, "kind": c.kind, "run": c.run} for c in playbook.checks],
        causes=list(playbook.causes),
        actions=[
            {"action": a.action.value, "description": a.description} for a in playbook.actions
        ],
        severity_reasons=reasons,
        explain=[e.public() for e in list(evidence)[:EXPLAIN_WORDS]],
    )


def check_text(text: object) -> str:
    """``text`` when it is a description the assistant reads, else a clear InvalidInput."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("describe the problem: the text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(
            f"the text has {len(text)} characters; describe the problem in at "
            f"most {MAX_TEXT_CHARS} (the symptom, not whole logs)"
        )
    return text


def diagnose_text(
    text: str,
    *,
    playbooks: list[Playbook] | None = None,
    limit: int = 3,
    known_features: Iterable[str] = (),
) -> TextDiagnosis:
    """Rank playbooks for a free-text incident description (deterministic)."""
    check_text(text)
    if limit < 1:
        raise InvalidInput("limit must be at least 1")
    playbooks = load_playbooks() if playbooks is None else playbooks
    by_id = {pb.id: pb for pb in playbooks}
    matcher = matcher_for(playbooks)
    ranking = matcher.rank(text)
    facts = extract_facts(text, known_features, matcher.speller.vocabulary)
    shown = matcher.shown(ranking, limit)
    if not shown:
        return TextDiagnosis(matched=False, matches=[], facts=facts, triage=list(TRIAGE_CHECKLIST))
    confidence = matcher.confidences(ranking)
    matches = [
        playbook_match(
            by_id[r.id],
            facts=facts,
            confidence=confidence[r.id],
            score=r.score,
            evidence=r.evidence,
        )
        for r in shown
    ]
    return TextDiagnosis(matched=True, matches=matches, facts=facts)


def diagnose_scenario(
    playbook_id: str, *, playbooks: list[Playbook] | None = None
) -> TextDiagnosis:
    """The answer for a predefined scenario chosen from the list (``--scenario ID``)."""
    pb = get_playbook(playbook_id, playbooks)
    return TextDiagnosis(matched=True, matches=[playbook_match(pb)], facts=Facts())


def list_scenarios(playbooks: list[Playbook] | None = None) -> list[dict[str, str]]:
    """``[{"id", "title", "severity", "summary"}]`` sorted by id."""
    playbooks = load_playbooks() if playbooks is None else playbooks
    return [
        {"id": pb.id, "title": pb.title, "severity": pb.severity.base.value, "summary": pb.summary}
        for pb in playbooks
    ]
