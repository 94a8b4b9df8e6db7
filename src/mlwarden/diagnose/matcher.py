"""Rank playbooks for free text: symptom concepts, BM25 over the playbooks' words, context.

The score of a playbook for a text is the sum of three parts, each kept with the words that
earned it (what ``--explain`` shows):

- symptom concepts (``concepts.yaml``) found in the text, each counted once, times its weight
  for the playbook: this is what generalises, since effect words ("stopped changing", "in
  EUR now") reach the playbook whose own text never uses them;
- Okapi BM25 of the text's words over the playbook's title, summary, symptom phrases and
  causes: words the ontology does not know still count;
- context concepts (canary, shadow, feature store, kafka, a retrain, a deploy): where the
  problem happens steers the ranking but is no evidence on its own.

The weights of the parts, the no-match thresholds and the confidence temperature are fitted
on ``tests/diagnose/oncall_train.yaml`` and ``cases.yaml``, never on the held-out file
(``bench/bench_diagnose_text.py --fit`` prints the search). Confidence is a softmax over *all*
playbooks' scores, so it does not depend on how many matches are shown. Everything is a pure
function of the text: same text, same answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlwarden.diagnose.concepts import Ontology, load_ontology
from mlwarden.diagnose.schema import Playbook
from mlwarden.diagnose.text import BM25, STOP_WORDS, Speller, Token, analyse


@dataclass(frozen=True)
class Weights:
    """The tunable constants of the matcher (fitted on the training texts only)."""

    symptom: float = 1.0
    lexical: float = 0.2
    context: float = 0.6
    # a second, different phrase of the same concept adds this fraction again (no more after)
    repeat: float = 0.5
    # a best score under this is no match (the triage checklist instead of a guess)
    min_score: float = 3.5
    # a text whose best playbook has no symptom concept needs this much evidence
    min_lexical_only: float = 6.0
    # softmax temperature of the confidence, fitted by log-loss on the training texts
    temperature: float = 0.5


WEIGHTS = Weights()
# Secondary matches are shown only when they score at least this fraction of the best one.
RELATIVE_CUTOFF = 0.25


@dataclass(frozen=True)
class Evidence:
    """Words of the text that raised a playbook's score, and why."""

    words: str
    via: str
    weight: float

    def public(self) -> dict[str, object]:
        return {"words": self.words, "via": self.via, "weight": round(self.weight, 3)}


@dataclass
class Ranked:
    """One playbook's score for a text, with the evidence behind it (strongest first)."""

    id: str
    score: float = 0.0
    symptom: float = 0.0
    evidence: list[Evidence] = field(default_factory=list)
    # distinct symptom phrases behind the score, and whether the text says where in an ML
    # system it happens (a domain or context word)
    phrases: int = 0
    in_domain: bool = False


def _document(pb: Playbook) -> str:
    return "\n".join([pb.title, pb.summary, *pb.symptoms.phrases, *pb.causes])


def _terms(tokens: Sequence[Token]) -> list[str]:
    return [
        t.norm
        for t in tokens
        if not t.quoted and not t.norm.startswith("#") and t.norm not in STOP_WORDS
    ]


class TextMatcher:
    """The ranking of a fixed set of playbooks (build once, rank many texts)."""

    def __init__(
        self,
        playbooks: Sequence[Playbook],
        ontology: Ontology | None = None,
        weights: Weights = WEIGHTS,
    ) -> None:
        self.ontology = ontology or load_ontology()
        self.weights = weights
        self.ids = sorted(pb.id for pb in playbooks)
        documents = {pb.id: _document(pb) for pb in playbooks}
        self.speller: Speller = self.ontology.speller(documents.values())
        self.kept = self.ontology.kept_values()
        self.bm25 = BM25({d: _terms(analyse(t, self.speller)) for d, t in documents.items()})

    def analyse(self, text: str) -> list[Token]:
        return analyse(text, self.speller, kept_values=self.kept)

    def rank(self, text: str) -> list[Ranked]:
        """Every playbook with its score and evidence, best first (ties by id)."""
        w = self.weights
        tokens = self.analyse(text)
        ranked = {d: Ranked(d) for d in self.ids}
        said: dict[str, list[str]] = {}
        hits = self.ontology.hits(tokens)
        in_domain = any(self.ontology.concepts[h.concept].kind != "symptom" for h in hits)
        for r in ranked.values():
            r.in_domain = in_domain
        for hit in hits:
            phrases = said.setdefault(hit.concept, [])
            if len(phrases) < 2 and hit.words not in phrases:
                phrases.append(hit.words)
        for name in sorted(said):
            concept = self.ontology.concepts[name]
            if concept.kind == "domain":
                continue
            scale = w.symptom if concept.kind == "symptom" else w.context
            for n, words in enumerate(said[name]):
                factor = scale * (1.0 if n == 0 else w.repeat)
                for pid, weight in concept.playbooks.items():
                    if pid in ranked and factor > 0:
                        r = ranked[pid]
                        r.score += factor * weight
                        if concept.kind == "symptom":
                            r.symptom += factor * weight
                            r.phrases += 1
                        r.evidence.append(
                            Evidence(words, f"{concept.kind} {name}", factor * weight)
                        )
        surface: dict[str, str] = {}  # a stem -> the word as first written, for --explain
        for t in tokens:
            if not t.quoted:
                surface.setdefault(t.norm, t.surface)
        for pid, terms in self.bm25.term_scores(_terms(tokens)).items():
            r = ranked[pid]
            for term, value in terms.items():
                r.score += w.lexical * value
                r.evidence.append(Evidence(surface[term], "word", w.lexical * value))
        out = sorted(ranked.values(), key=lambda r: (-r.score, r.id))
        for r in out:
            r.evidence.sort(key=lambda e: (-e.weight, e.via, e.words))
        return out

    def matched(self, best: Ranked) -> bool:
        """Whether the best playbook is a match at all (else: the triage checklist)."""
        w = self.weights
        if best.score < w.min_score:
            return False
        if not best.in_domain and best.phrases < 2:
            return False  # one symptom word about something else: "my laptop is slow"
        return best.symptom > 0 or best.score >= w.min_lexical_only

    def shown(self, ranking: Sequence[Ranked], limit: int) -> list[Ranked]:
        """The matches an answer shows: none when the best is no match, else the best and up
        to ``limit - 1`` runners-up scoring at least ``RELATIVE_CUTOFF`` of it."""
        if not ranking or not self.matched(ranking[0]):
            return []
        best = ranking[0].score
        return [r for r in ranking[:limit] if r.score >= RELATIVE_CUTOFF * best]

    def confidences(self, ranking: Sequence[Ranked]) -> dict[str, float]:
        """Softmax of the scores over every playbook: independent of how many are shown."""
        top = max((r.score for r in ranking), default=0.0)
        exps = {r.id: math.exp((r.score - top) / self.weights.temperature) for r in ranking}
        total = sum(exps.values())
        return {pid: value / total for pid, value in exps.items()}


_CACHE: dict[tuple[tuple[str, ...], Weights], TextMatcher] = {}
_CACHE_SIZE = 8


def matcher_for(playbooks: Sequence[Playbook], weights: Weights = WEIGHTS) -> TextMatcher:
    """The matcher of a set of playbooks, built once per distinct set (and weights)."""
    key = (tuple(pb.model_dump_json() for pb in playbooks), weights)
    found = _CACHE.get(key)
    if found is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        found = _CACHE[key] = TextMatcher(playbooks, weights=weights)
    return found
