"""The symptom ontology (``concepts.yaml``): symptom concept -> effect phrases -> playbooks.

Engineers name a symptom by its effect ("values that stop changing", "every answer the same",
"amounts in another currency") at least as often as by its name. Each concept lists both, and
which playbooks it points to with what weight. Phrases are analysed like the text itself
(``text.analyse``), then found in one pass over the tokens: at each token only the phrases
that start with one of its labels are tried, and a phrase is at most a few words long.

A symptom phrase does not count when a negation precedes it within two words of its clause
("no drift", "not refreshing") or a reassurance follows it ("error rate is fine", "AUC
unchanged"): the text then says the symptom is absent. Concepts that name an absence ("inputs
stable") list their own phrases. Nor does a symptom phrase inside a longer phrase of another
symptom ("cpu throttling" is latency, not a throttled dependency). Context concepts (canary,
feature store) and the domain concept (model, predictions, pods) only say where the text is.

>>> onto = load_ontology()
>>> sorted({h.concept for h in onto.hits(analyse("p99 is slow, no drift", onto.speller()))})
['domain', 'inputs_stable', 'latency']
>>> sorted({h.concept for h in onto.hits(analyse("no errors, p99 is fine", onto.speller()))})
['domain']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml

from mlwarden.diagnose.text import (
    FILLERS,
    Speller,
    Token,
    analyse,
    normalise,
    vocabulary_of,
)

ONTOLOGY_FILE = Path(__file__).with_name("concepts.yaml")
_NEGATORS = frozenset({"no", "not", "nothing", "without", "none", "never"})
_REASSURANCES = frozenset(
    {"fine", "unchang", "stabl", "ok", "okay", "green", "flat", "healthy", "normal", "unaffect"}
)
WILDCARD = "*"


@dataclass(frozen=True)
class Concept:
    name: str
    kind: Literal["symptom", "context", "domain"]
    playbooks: Mapping[str, float]
    phrases: tuple[tuple[str, ...], ...]
    # the phrases as written (their words join the speller's vocabulary as spelled)
    said: tuple[str, ...] = ()
    # quoted values that still count (a quoted "EUR" names a currency)
    values: bool = False


@dataclass(frozen=True)
class Hit:
    """One phrase of a concept found in the text: token positions and the words as written."""

    concept: str
    start: int
    end: int
    words: str


@dataclass
class Ontology:
    concepts: dict[str, Concept]
    _first: dict[str, list[tuple[tuple[str, ...], str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in sorted(self.concepts):
            for phrase in self.concepts[name].phrases:
                self._first.setdefault(phrase[0], []).append((phrase, name))
        for entries in self._first.values():  # longest phrase first: it wins its position
            entries.sort(key=lambda e: (-len(e[0]), e[1], e[0]))

    def words(self) -> list[str]:
        """Every phrase word as written (for the speller's vocabulary: "replaced" is a word,
        not a typo of "replayed")."""
        return sorted(
            {
                w
                for c in self.concepts.values()
                for p in c.said
                for w in p.split()
                if not w.startswith("#") and w != WILDCARD
            }
        )

    def speller(self, extra_texts: Iterable[str] = ()) -> Speller:
        return Speller(vocabulary_of([" ".join(self.words()), *extra_texts]))

    def kept_values(self) -> set[str]:
        return {p[0] for c in self.concepts.values() if c.values for p in c.phrases if len(p) == 1}

    def hits(self, tokens: list[Token]) -> list[Hit]:
        """Every concept phrase in ``tokens`` (not quoted, symptoms not negated); per concept
        the longest phrase at a position, none inside another of the same concept, and no
        symptom phrase inside a longer one of another symptom."""
        out: list[Hit] = []
        reach: dict[str, int] = {}  # per concept, the end of its last hit: no overlaps
        for i, token in enumerate(tokens):
            if token.quoted:
                continue
            taken: set[str] = set()
            for label in sorted(token.labels):
                for phrase, name in self._first.get(label, ()):
                    if name in taken or i < reach.get(name, 0) or not _matches(phrase, tokens, i):
                        continue
                    end = i + len(phrase)
                    # a negated symptom is absent; a negated context is still the context
                    if (
                        self.concepts[name].kind == "symptom"
                        and phrase[0] not in _NEGATORS
                        and _negated(tokens, i, end)
                    ):
                        continue
                    taken.add(name)
                    reach[name] = end
                    out.append(Hit(name, i, end, " ".join(t.surface for t in tokens[i:end])))
        return self._longest_symptoms(out)

    def _longest_symptoms(self, hits: list[Hit]) -> list[Hit]:
        """Drop a symptom phrase inside a longer one of another symptom: "cpu throttling" is
        latency, not a throttled dependency; "missing partition" is late data, not nulls."""
        kept: list[Hit] = []
        cover: Hit | None = None  # the symptom hit reaching furthest so far
        for hit in sorted(hits, key=lambda h: (h.start, -(h.end - h.start), h.concept)):
            if self.concepts[hit.concept].kind != "symptom":
                kept.append(hit)
                continue
            if (
                cover is not None
                and cover.concept != hit.concept
                and hit.end <= cover.end
                and hit.end - hit.start < cover.end - cover.start
            ):
                continue
            if cover is None or hit.end > cover.end:
                cover = hit
            kept.append(hit)
        return kept


def _matches(phrase: tuple[str, ...], tokens: list[Token], start: int) -> bool:
    if start + len(phrase) > len(tokens):
        return False
    for offset, word in enumerate(phrase):
        token = tokens[start + offset]
        if word == WILDCARD:  # any word, a quoted value too ("renamed 'amt'")
            continue
        if token.quoted or word not in token.labels:
            return False
    return True


def _negated(tokens: list[Token], start: int, end: int) -> bool:
    """A negator in the two words before, or a reassurance in the two after, same clause."""
    for i in range(start - 1, max(start - 3, -1), -1):
        if tokens[i + 1].clause_start:
            break
        if not tokens[i].quoted and tokens[i].norm in _NEGATORS:
            return True
    for i in range(end, min(end + 2, len(tokens))):
        if tokens[i].clause_start:
            break
        if not tokens[i].quoted and tokens[i].norm in _REASSURANCES:
            return True
    return False


def _phrase(text: str) -> tuple[str, ...]:
    """A phrase's words analysed like a text's: fillers dropped, stemmed, classes kept."""
    words: list[str] = []
    for raw in normalise(text).replace("-", " ").replace("/", " ").split():
        if raw in FILLERS:
            continue
        if "#" in raw or raw == WILDCARD or raw.replace(".", "", 1).isdigit():
            words.append(raw)
        else:
            words.extend(t.norm for t in analyse(raw, Speller({})))
    return tuple(words)


def parse_ontology(data: Mapping[str, object], source: str = "concepts.yaml") -> Ontology:
    """Validate the YAML mapping of concepts (errors name the concept)."""
    concepts: dict[str, Concept] = {}
    for name, body in data.items():
        if not isinstance(body, dict) or body.get("kind") not in ("symptom", "context", "domain"):
            raise ValueError(f"{source}: concept {name!r} needs kind: symptom, context or domain")
        weights = body.get("playbooks")
        phrases = body.get("say")
        if body["kind"] == "domain":
            weights = weights or {}
        if (
            not isinstance(weights, dict)
            or not isinstance(phrases, list)
            or (not weights and body["kind"] != "domain")
        ):
            raise ValueError(f"{source}: concept {name!r} needs playbooks and say")
        parsed = []
        for said in phrases:
            if not isinstance(said, str):  # YAML reads a bare null, yes, no or 1 as no text
                raise ValueError(
                    f"{source}: concept {name!r}: phrase {said!r} is not text; quote it"
                )
            phrase = _phrase(said)
            # "not in" or "have label" would shrink to one word that says something else
            if not phrase or (len(phrase) == 1 and len(said.split()) > 1):
                raise ValueError(
                    f"{source}: concept {name!r}: phrase {said!r} is only filler "
                    f"words around {phrase[0] if phrase else 'nothing'!r}"
                )
            parsed.append(phrase)
        concepts[str(name)] = Concept(
            name=str(name),
            kind=body["kind"],
            playbooks={str(k): float(v) for k, v in weights.items()},
            phrases=tuple(parsed),
            said=tuple(phrases),
            values=bool(body.get("values", False)),
        )
    return Ontology(concepts)


@lru_cache(maxsize=1)
def load_ontology() -> Ontology:
    """The bundled ontology, parsed once."""
    return parse_ontology(yaml.safe_load(ONTOLOGY_FILE.read_text(encoding="utf-8")))


__all__ = ["Concept", "Hit", "Ontology", "load_ontology", "parse_ontology"]
