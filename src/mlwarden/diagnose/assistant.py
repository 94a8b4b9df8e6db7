"""The incident assistant: an engineer's words in, ranked playbooks with severity and steps out.

Retrieval is BM25 over each playbook's symptom text (``text.BM25Index``); facts from the words
(``facts.extract_facts``) set each match's severity through the playbook's escalators. When the
best score is too weak the answer says so (``matched=False``) and carries the generic triage
checklist instead of a confident guess.

>>> answer = diagnose_text("p99 went from 200ms to 2s on the scoring endpoint")
>>> answer.matched, answer.matches[0].id, answer.matches[0].severity.value
(True, 'inference_latency_spike', 'critical')
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from mlwarden.diagnose.facts import Facts, escalate, extract_facts
from mlwarden.diagnose.loader import get_playbook, load_playbooks
from mlwarden.diagnose.schema import Playbook, Severity
from mlwarden.diagnose.text import BM25Index
from mlwarden.errors import InvalidInput

# A top BM25 score under this is "no good match": below it, the words shared with the best
# playbook are a couple of generic ones ("broken", "pipeline"), not a described symptom.
MIN_SCORE = 6.0
# Without any recognised symptom concept (a ``~token`` from the phrase rules or synonyms) the
# overlap must be this much stronger: shared everyday words ("time", "friday") are not symptoms.
MIN_SCORE_WITHOUT_CONCEPT = 9.0
# Secondary matches are shown only when they score at least this fraction of the best one.
RELATIVE_CUTOFF = 0.25
# Scale of the confidence curve 1 - exp(-score / CONFIDENCE_SCALE).
CONFIDENCE_SCALE = 12.0
# The longest description an engineer writes (a pasted Slack thread or postmortem paragraph)
# fits in a few thousand characters; the labelled sets' longest is under 600. Matching is
# linear in the text, and this bounds what one request costs the server that also serves
# predictions (about 50 ms of CPU at the cap).
MAX_TEXT_CHARS = 5_000

TRIAGE_CHECKLIST: list[str] = [
    "System first: is the model endpoint up? Error rate and HTTP status codes in the last hour.",
    "Latency p50/p95/p99 of the endpoint and of its dependencies (feature store, databases).",
    "Saturation: CPU, memory, restarts/OOM kills of the serving pods "
    "(kubectl top pod; kubectl get pods).",
    "Traffic volume vs the same hour last week; any client sending unusual load.",
    "Recent changes: deploys, config flags, upstream releases, schema changes "
    "(mlwarden deploy history MODEL).",
    "Data: record counts, freshness of the latest data, null and out-of-range rates per feature.",
    "Inputs: drift of the most important features against the reference "
    "(mlwarden signals MODEL --signal psi).",
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
    matched_terms: list[str] = Field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """Exactly the keys of the ``--json`` contract."""
        return {"id": self.id, "title": self.title, "severity": self.severity.value,
                "confidence": self.confidence, "checks": self.checks, "causes": self.causes,
                "actions": self.actions}


class TextDiagnosis(BaseModel):
    matched: bool
    matches: list[TextMatch]
    facts: Facts
    triage: list[str] = Field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """``{"matched": bool, "matches": [...]}`` — the CLI ``--json`` and API contract."""
        return {"matched": self.matched, "matches": [m.public() for m in self.matches]}

    def to_json(self) -> str:
        return json.dumps(self.public(), indent=2, sort_keys=False, ensure_ascii=False)


def playbook_match(playbook: Playbook, *, facts: Facts | None = None, confidence: float = 1.0,
                   score: float = 0.0, matched_terms: Iterable[str] = ()) -> TextMatch:
    """A :class:`TextMatch` for a playbook, its severity escalated by ``facts``."""
    facts = facts or Facts()
    severity, reasons = escalate(playbook, facts)
    return TextMatch(
        id=playbook.id, title=playbook.title, severity=severity, confidence=round(confidence, 3),
        score=round(score, 4),
        checks=[{"title": c.title, "kind": c.kind, "run": c.run} for c in playbook.checks],
        causes=list(playbook.causes),
        actions=[{"action": a.action.value, "description": a.description}
                 for a in playbook.actions],
        severity_reasons=reasons, matched_terms=sorted(matched_terms),
    )


def _doc_text(pb: Playbook) -> str:
    # Title and phrases twice: they are written as symptoms, the causes only hint at them.
    return "\n".join([pb.title, pb.title, pb.summary, *pb.symptoms.phrases, *pb.symptoms.phrases,
                      *pb.causes])


@lru_cache(maxsize=8)
def _index(key: tuple[tuple[str, str], ...]) -> BM25Index:
    return BM25Index(dict(key))


def build_index(playbooks: list[Playbook]) -> BM25Index:
    return _index(tuple((pb.id, _doc_text(pb)) for pb in playbooks))


def diagnose_text(text: str, *, playbooks: list[Playbook] | None = None, limit: int = 3,
                  known_features: Iterable[str] = ()) -> TextDiagnosis:
    """Rank playbooks for a free-text incident description (deterministic)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("describe the problem: the text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"the text has {len(text)} characters; describe the problem in at "
                           f"most {MAX_TEXT_CHARS} (the symptom, not whole logs)")
    if limit < 1:
        raise InvalidInput("limit must be at least 1")
    playbooks = load_playbooks() if playbooks is None else playbooks
    by_id = {pb.id: pb for pb in playbooks}
    index = build_index(playbooks)
    scored = index.score_terms(index.analyzer.terms(text))
    ranked = sorted(scored.items(), key=lambda kv: (-kv[1][0], kv[0]))
    facts = extract_facts(text, known_features, index.analyzer.vocabulary)
    best, best_hits = ranked[0][1] if ranked else (0.0, [])
    has_concept = any(h.startswith("~") for h in best_hits)
    if best < (MIN_SCORE if has_concept else MIN_SCORE_WITHOUT_CONCEPT):
        return TextDiagnosis(matched=False, matches=[], facts=facts, triage=list(TRIAGE_CHECKLIST))
    top = [(d, s, hits) for d, (s, hits) in ranked[:limit] if s >= RELATIVE_CUTOFF * best]
    squares = sum(s * s for _, s, _ in top)
    matches = []
    for d, s, hits in top:
        strength = 1 - math.exp(-s / CONFIDENCE_SCALE)
        # Confidence falls when runners-up score close to the leader (the text is ambiguous).
        confidence = strength * (0.4 + 0.6 * (s * s) / squares)
        matches.append(playbook_match(by_id[d], facts=facts, confidence=confidence, score=s,
                                      matched_terms=hits))
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
    return [{"id": pb.id, "title": pb.title, "severity": pb.severity.base.value,
             "summary": pb.summary} for pb in playbooks]
