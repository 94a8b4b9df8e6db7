"""Text analysis for diagnosis from free text: tokens with labels, typo repair, and Okapi BM25.

``analyse`` turns an engineer's words into :class:`Token` s, in one left-to-right pass:

1. quoted spans: a quoted single word (``'not_spam'``, ``"EUR"``, ```tenure```) is a *value* (a
   class, a field, a setting), not a symptom word: its tokens are marked ``quoted`` and the
   matcher skips them (unless the value names a unit, which is itself a symptom of a unit
   change). A quoted phrase with spaces is usually an error message and is read as text;
2. words and numbers: "n't" reads as "not" (``hasn't`` -> ``has not``), other apostrophes
   inside words go (``friday's`` -> ``fridays``), ``snake_case``
   splits into its words, a number carries classes (``#n``; ``#neg`` for ``-999``; ``#pct``
   and ``#overpct`` for ``140%``; ``#times`` for ``10x``), ``v14`` also reads as ``v#n``;
3. typo repair: a word of 5+ letters unknown to the vocabulary becomes the vocabulary word at
   optimal-string-alignment distance 1 (ties: the word in more playbooks, then alphabetical);
   a longer word with no such neighbour gets the vocabulary word sharing most character
   trigrams (Dice >= 0.7), which also joins spellings (materialisation, kilometres);
4. light suffix stemming, and filler words ("the", "is", "to") dropped.

Every step is linear in the text: one regular-expression pass with bounded spans, and per
word a bounded number of dictionary probes. BM25 is Okapi BM25 (Robertson & Zaragoza, "The
Probabilistic Relevance Framework: BM25 and Beyond", Foundations and Trends in IR 3(4), 2009):
``sum_t idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))`` with
``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``.

>>> [(t.norm, t.quoted) for t in analyse("p99 up to 2s, 'not_spam' everywhere", Speller({}))]
[('p99', False), ('up', False), ('#n', False), ('s', False), ('not', True), ('spam', True), \
('everywher', False)]
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# The longest description analysed: ``free_text`` refuses more, and so does the API's request
# model (here, so the server defines it at start without importing the matcher). The longest
# description an engineer writes (a pasted Slack thread or postmortem paragraph) fits in a few
# thousand characters; the labelled sets' longest is under 600. Matching is linear in the
# text, and this bounds what one request costs the server that also serves predictions
# (50-105 ms of CPU at the cap, docs/benchmarks.md).
MAX_TEXT_CHARS = 5_000

_STOP_TEXT = """a about above after again all also am an and any are as at be been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself just
    me more most my no nor not now of off on once only or other our ours out over own same she
    should so some such than that the their them then there these they this those through to
    too under until up very was we were what when where which while who whom why will with
    would you your yours yet get got getting seem seems look looks like think feel feels hey
    all guys folks team anyone someone please thanks thank ok okay us still even really way
    since today yesterday morning afternoon tonight week"""
# Words that carry no evidence for BM25 (everyday English); phrases may still use them.
STOP_WORDS = frozenset(_STOP_TEXT.split())
# Words dropped from the token stream altogether, from texts and phrases alike, so "out of
# memory" meets "out memory" and "went to the moon" is not a phrase gap.
_FILLER_TEXT = """a an the is are was were be been being am our my their its it this that
    these those has have had just really very so like do does did i we you they he she me us
    them to of in on at for with and or as by from into our your"""
FILLERS = frozenset(_FILLER_TEXT.split())

# quote marks: ' " ` and the typographic single and double quotes
_Q = "'\"`\u2018\u2019\u201c\u201d"
_APOS = "'\u2019"
_QUOTED = re.compile(f"(?<![a-z0-9])([{_Q}])([^{_Q}\\n]{{1,80}})([{_Q}])(?![a-z0-9])")
_TOKEN = re.compile(r"(\d++(?:\.\d++)?)(%|[a-z]++)?|([a-z][a-z0-9]*+)")
_APOSTROPHE_IN_WORD = re.compile(f"(?<=[a-z])[{_APOS}](?=[a-z])")
_NOT = re.compile(f"\\b(?:(can)not|(can|won|ai)[{_APOS}]?t|([a-z]+)n[{_APOS}]t)\\b")
_NOT_STEM = {"can": "can", "won": "will", "ai": "is"}


def normalise(text: str) -> str:
    """Lower case, "n't" spelled "not" (a negation the matcher reads), other apostrophes gone."""

    def spelled(m: re.Match[str]) -> str:
        word = m.group(1) or m.group(3) or _NOT_STEM[m.group(2)]
        return f"{word} not"

    return _APOSTROPHE_IN_WORD.sub("", _NOT.sub(spelled, text.lower()))


_VERSION = re.compile(r"[a-z]+\d+")
_CLAUSE_MARKS = frozenset(",.;:!?()[]\n")


def stem(word: str) -> str:
    """Light suffix stripping: plural and verb forms meet (timeouts, throttled -> throttle)."""
    # no "-ly": "slowly" (a trend) must not meet "slow" (latency)
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                break
            if suffix == "es" and not word.endswith(("ches", "shes", "sses", "xes", "zes")):
                continue
            word = word[: len(word) - len(suffix)] + keep
            break
    # "throttle" and "throttled" both end as "throttl"
    return word[:-1] if len(word) > 4 and word.endswith("e") else word


def osa_distance_le1(a: str, b: str) -> bool:
    """True when the optimal-string-alignment distance between ``a`` and ``b`` is at most 1."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _trigrams(word: str) -> set[str]:
    padded = f"^{word}$"
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


# A trigram found in more vocabulary words than this says little about which one was meant;
# skipping it bounds the work per unknown word.
_MAX_TRIGRAM_POSTINGS = 40
_MIN_DICE = 0.7


class Speller:
    """Typo repair against a vocabulary (surface word -> number of documents it occurs in)."""

    def __init__(self, vocabulary: Mapping[str, int]) -> None:
        self.vocabulary = dict(vocabulary)
        # Each word and each of its one-letter deletions -> the words that give it. Two words at
        # distance 1 share a key (a deletion of the longer is the shorter; a substitution or a
        # swap leaves a common deletion), so a lookup costs a few dictionary probes per letter of
        # the unknown word instead of a scan of the vocabulary.
        self._by_deletion: dict[str, set[str]] = {}
        self._by_trigram: dict[str, list[str]] = {}
        self._longest = max(map(len, self.vocabulary), default=0)
        for word in sorted(self.vocabulary):
            for key in (word, *_deletions(word)):
                self._by_deletion.setdefault(key, set()).add(word)
            if len(word) >= 6:
                for gram in _trigrams(word):
                    self._by_trigram.setdefault(gram, []).append(word)

    def correct(self, word: str) -> str:
        """The vocabulary word closest to an unknown word of 5+ letters, else the word itself.

        Only words with the same first letter qualify: typing rarely gets the first letter
        wrong, and an English word the vocabulary lacks ("pulls") must not become a symptom
        word ("nulls").
        """
        if (
            len(word) < 5
            or len(word) > self._longest + 2
            or word in self.vocabulary
            or word in STOP_WORDS
            or not word.isalpha()
        ):
            return word
        candidates: set[str] = set()
        for key in (word, *_deletions(word)):
            candidates |= self._by_deletion.get(key, set())
        best = min(
            (
                (-self.vocabulary[c], c)
                for c in candidates
                if c[0] == word[0] and osa_distance_le1(word, c)
            ),
            default=None,
        )
        if best is not None:
            return best[1]
        return self._nearest_by_trigrams(word) if len(word) >= 7 else word

    def _nearest_by_trigrams(self, word: str) -> str:
        grams = _trigrams(word)
        shared: Counter[str] = Counter()
        for gram in sorted(grams):
            postings = self._by_trigram.get(gram, ())
            if len(postings) <= _MAX_TRIGRAM_POSTINGS:
                shared.update(postings)
        best, best_key = word, (0.0, "")
        for candidate, common in shared.items():
            if candidate[0] != word[0]:
                continue
            dice = 2 * common / (len(grams) + len(_trigrams(candidate)))
            key = (dice, candidate)
            if dice >= _MIN_DICE and (
                key[0] > best_key[0] or (key[0] == best_key[0] and candidate < best_key[1])
            ):
                best, best_key = candidate, key
        return best


@dataclass(frozen=True, slots=True)
class Token:
    """One analysed word or number: ``norm`` is its stem, ``labels`` what phrases may match."""

    norm: str
    labels: frozenset[str]
    surface: str
    quoted: bool = False
    # a punctuation mark separates it from the token before: negation does not reach across
    clause_start: bool = False


def _number_labels(digits: str, suffix: str, negative: bool) -> tuple[str, set[str]]:
    labels = {"#n", digits}
    if negative:
        labels.add("#neg")
    if suffix == "%":
        labels.add("#pct")
        if float(digits) > 100:
            labels.add("#overpct")
    if suffix == "x":
        labels.add("#times")
    return "#n", labels


def analyse(text: str, speller: Speller, *, kept_values: Iterable[str] = ()) -> list[Token]:
    """The tokens of ``text`` (see the module docstring); ``kept_values`` are quoted words that
    still count as symptom words (unit names)."""
    low = normalise(text)
    kept = frozenset(kept_values)
    quoted_spans = [
        (m.start(2), m.end(2))
        for m in _QUOTED.finditer(low)
        if not any(ch.isspace() for ch in m.group(2))
    ]
    out: list[Token] = []
    span_index = 0
    repaired: dict[str, str] = {}
    last_end, pending = 0, False
    for m in _TOKEN.finditer(low):
        clause = pending or any(ch in _CLAUSE_MARKS for ch in low[last_end : m.start()])
        last_end, pending = m.end(), False
        while span_index < len(quoted_spans) and quoted_spans[span_index][1] <= m.start():
            span_index += 1
        quoted = (
            span_index < len(quoted_spans)
            and quoted_spans[span_index][0] <= m.start() < quoted_spans[span_index][1]
        )
        digits, suffix, word = m.group(1), m.group(2) or "", m.group(3)
        if digits is not None:
            negative = (
                m.start() > 0
                and low[m.start() - 1] == "-"
                and (m.start() < 2 or not low[m.start() - 2].isalnum())
            )
            if suffix == "xx":  # 5xx, 4xx
                out.append(
                    Token(digits + suffix, frozenset({digits + suffix}), m.group(0), quoted, clause)
                )
                continue
            norm, labels = _number_labels(digits, suffix, negative)
            out.append(Token(norm, frozenset(labels), m.group(0), quoted, clause))
            if suffix and suffix not in ("%", "x"):
                out.append(Token(stem(suffix), frozenset({stem(suffix)}), suffix, quoted))
            continue
        if word in FILLERS:
            pending = clause  # the next token still starts the clause
            continue
        if word not in repaired:
            repaired[word] = speller.correct(word)
        norm = stem(repaired[word])
        labels = {norm}
        if _VERSION.fullmatch(word):
            labels.add(re.sub(r"\d+$", "#n", word))
        out.append(Token(norm, frozenset(labels), m.group(0), quoted and norm not in kept, clause))
    return out


def vocabulary_of(texts: Iterable[str]) -> dict[str, int]:
    """Word -> number of texts containing it (the speller's vocabulary)."""
    counts: Counter[str] = Counter()
    for text in texts:
        low = normalise(text)
        counts.update({m.group(3) for m in _TOKEN.finditer(low) if m.group(3)})
    return dict(counts)


class BM25:
    """Okapi BM25 over fixed documents of terms, keyed by id."""

    def __init__(
        self, documents: Mapping[str, list[str]], *, k1: float = 1.2, b: float = 0.75
    ) -> None:
        self.k1, self.b = k1, b
        self.ids = sorted(documents)
        self.doc_terms = {d: Counter(documents[d]) for d in self.ids}
        self.lengths = {d: sum(c.values()) for d, c in self.doc_terms.items()}
        self.avgdl = sum(self.lengths.values()) / max(len(self.ids), 1)
        df: Counter[str] = Counter()
        for counts in self.doc_terms.values():
            df.update(counts.keys())
        n = len(self.ids)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def term_scores(self, query_terms: Iterable[str]) -> dict[str, dict[str, float]]:
        """Per document: each matched query term and its BM25 contribution."""
        unique = sorted(set(query_terms))
        out: dict[str, dict[str, float]] = {}
        for d in self.ids:
            counts, norm = self.doc_terms[d], 1 - self.b + self.b * self.lengths[d] / self.avgdl
            hits: dict[str, float] = {}
            for t in unique:
                tf = counts.get(t, 0)
                if tf:
                    hits[t] = self.idf[t] * tf * (self.k1 + 1) / (tf + self.k1 * norm)
            out[d] = hits
        return out
