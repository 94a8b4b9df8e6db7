"""Deterministic text retrieval over playbook symptom texts: Okapi BM25 with domain analysis.

Method: Okapi BM25 (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and
Beyond", Foundations and Trends in IR 3(4), 2009), scoring
``sum_t idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))`` with
``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``.

The analysis chain is what makes it work on pager messages and Slack paragraphs:

1. typo repair: a word of 5+ letters unknown to the vocabulary is replaced by the vocabulary
   word at optimal-string-alignment distance 1 (insert, delete, substitute, swap neighbours);
   ties go to the word found in more playbooks, then alphabetical order;
2. phrase rules: regular expressions over the raw text that add a *concept token* (``p99`` and
   "response time" add ``~latency``; "all the same" adds ``~constant``; "429" adds
   ``~throttle``), so differently worded descriptions of one symptom meet on one token;
3. tokenisation, stop words, light suffix stemming, and a synonym map that adds a concept token
   next to the word itself (so the exact word still counts).

Everything iterates over sorted or ordered structures: the same text gives the same scores.

>>> index = BM25Index({"a": "latency spike p99", "b": "null values in a feature"})
>>> [doc for doc, _ in index.rank("p95 is slow")][:1]
['a']
"""

# Regular-expression tables read better unbroken.
# ruff: noqa: E501
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping

# Regular expressions over lower-cased raw text -> concept tokens they add.
PHRASE_RULES: list[tuple[str, tuple[str, ...]]] = [
    (r"\bp ?(50|75|90|95|99|999)\b|percentile|tail latenc|response times?|takes? (forever|seconds)|"
     r"\bslo\b|\bslow(er|ness|ly)?\b|sluggish", ("~latency",)),
    (r"time ?outs?\b|timed? ?out|timing out|readtimeout|deadline exceeded", ("~timeout",)),
    (r"\bnan\b|\bnulls?\b|\bnone\b|missing values?|\bempty\b|\bna\b|impute", ("~null",)),
    (r"all (look |are |the )*(the )?(same|identical)|same (score|prediction|value|class|answer|output)|"
     r"identical|\bconstant\b|always predicts?|every (request|prediction|score|customer|input)|"
     r"literally every|distinct predictions?( count)? (is )?1\b|one value for all|no variance",
     ("~constant",)),
    (r"\boom|out of memory|memory (leak|climb|grow)|\brss\b|crashloop", ("~memory",)),
    (r"throttl|rate.?limit|\b429\b|too many requests|quota", ("~throttle",)),
    (r"\b5\d\ds?\b|\b5xx\b|internal server error|stack ?traces?|traceback|exceptions?\b", ("~servererror",)),
    (r"after (the |we |our |a )?(deploy|release|rollout|roll out|promot|ship)|since (the )?(deploy|release)|"
     r"rolled out|\bnew (model )?version\b|\bv\d+\b|promoted|\brevert", ("~deploy",)),
    (r"(?<!\d)\d++ ?x (bigger|larger|smaller|higher|lower)|orders? of magnitude|factor of|"
     r"\b(cents?|dollars?|milliseconds?|fahrenheit|celsius|miles|kilomet\w*|grams?|kilograms?|kg|"
     r"pounds?|lbs|ounces?|inches|feet|meters?|bytes|percent)\b", ("~scale",)),
    (r"\bqps\b|\brps\b|requests? per (second|minute)|request (volume|rate)|autoscal|"
     r"(pods?|replicas?) scal|scaling (up|out)|(traffic|load) (spike|surge)|"
     r"(spike|surge|jump) in (traffic|load|requests)|trafic", ("~traffic",)),
    (r"\bdrift(s|ed|ing)?\b|\bpsi\b|\bks[- ]test|distribution (shift|change|moved)", ("~drift",)),
    (r"\bauc\b|accuracy|\bf1\b|\bctr\b|precision|recall|performance|metrics?\b", ("~metric",)),
    (r"label|ground ?truth|feedback|outcomes?\b|chargeback", ("~label",)),
    (r"clocks? (changed|change|went|go)|summer time|winter time|hour(_| )?(of(_| )day|feature)|"
     r"day(_| )of(_| )week|\butc\b|timezone|time zone|daylight|\bdst\b|local time|timestamp", ("~time",)),
    (r"duplicat|dedup|twice|double[ds]? count|replay", ("~duplicate",)),
    (r"-999|outside (the )?(physical )?(limits|range)|out of range|impossible|\bsensors?\b|"
     r"(?<!\d)\d{3,}+\s?%", ("~range",)),
    (r"\bunknown categor|unseen|never (seen|saw|appeared|trained|encountered)|not in (the )?training|new (categor|country|merchant|plan|product)",
     ("~unseen",)),
    (r"\bstale\b|not (refresh|updat)|haven'?t refreshed|frozen|materiali[sz]", ("~stale",)),
    (r"behind schedule|running late|no (new |fresh )?(records|data|events|rows)\b|"
     r"\blate\b|\blag\b|hasn'?t landed|not landed|did not land|delayed|stopped arriving", ("~late",)),
    # A weekday alone says when something started; a recurring one says seasonality.
    (r"\b(every|each) (single )?(day|night|week|weekend|month|morning|evening|saturday|sunday|monday|"
     r"tuesday|wednesday|thursday|friday)|\bon weekends\b|same time every", ("~season",)),
    (r"(aren'?t|are not|isn'?t|is not|not) (in|back|available|arrived) yet|still (aren'?t|not) in\b|"
     r"can'?t (measure|compute|evaluate)", ("~late", "~label")),
    (r"training.?serving|train.?serve|(online|real.?time|serving).{0,60}(offline|batch|training)|"
     r"offline.{0,60}(online|prod)|(doesn'?t|don'?t|does not|do not) match", ("~skew",)),
    (r"(older|younger|larger|smaller|higher|lower|different|richer|poorer) than (the |in |at )?training",
     ("~drift",)),
    (r"\bpriors?\b|base rate|prevalence|(fraud|spam|churn|positive|default) (rate|share)|"
     r"share of (positive|churn|fraud|spam)", ("~prior",)),
    (r"threshold|cut ?off|operating point|false positives|flagg?ing (too many|\d+x)", ("~threshold",)),
]
_COMPILED_RULES = [(re.compile(rx), tokens) for rx, tokens in PHRASE_RULES]

# Word (after stemming) -> concept token added next to it.
SYNONYMS: dict[str, str] = {
    "nan": "~null", "null": "~null", "missing": "~null", "empty": "~null", "blank": "~null",
    "latency": "~latency", "slow": "~latency", "sluggish": "~latency", "lag": "~late",
    "timeout": "~timeout", "hang": "~timeout",
    "throttl": "~throttle", "throttle": "~throttle", "quota": "~throttle",
    "oom": "~memory", "oomkill": "~memory", "memory": "~memory", "rss": "~memory", "heap": "~memory",
    "crash": "~servererror", "exception": "~servererror", "error": "~servererror", "fail": "~servererror",
    "deploy": "~deploy", "release": "~deploy", "rollout": "~deploy", "ship": "~deploy",
    "push": "~deploy", "rollback": "~deploy", "revert": "~deploy",
    "qps": "~traffic", "traffic": "~traffic", "volume": "~traffic", "load": "~traffic",
    "surge": "~traffic", "bot": "~traffic", "campaign": "~traffic",
    "drift": "~drift", "shift": "~drift", "psi": "~drift", "histogram": "~drift",
    "label": "~label", "feedback": "~label",
    "timezone": "~time", "utc": "~time", "timestamp": "~time", "dst": "~time",
    "duplicate": "~duplicate", "dup": "~duplicate", "dedup": "~duplicate",
    "sensor": "~range", "outlier": "~range", "reading": "~range",
    "stale": "~stale", "cache": "~stale",
    "late": "~late", "delay": "~late", "partition": "~late",
    "unsure": "~confidence", "confident": "~confidence", "confidence": "~confidence",
    "confidance": "~confidence", "uncertain": "~confidence", "uncertainty": "~confidence",
    "probability": "~confidence",
    "schema": "~schema", "renam": "~schema", "rename": "~schema", "keyerror": "~schema",
    "contract": "~schema",
    "season": "~season", "seasonal": "~season", "seasonality": "~season",
    "holiday": "~season", "calendar": "~season", "cycle": "~season",
    "imbalance": "~imbalance", "minority": "~imbalance", "imbalanc": "~imbalance",
    "notebook": "~skew",
    "unit": "~scale", "scale": "~scale", "rescal": "~scale",
}

_STOP_TEXT = """a about above after again all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not now of off on once only or other our ours out over own same she should
    so some such than that the their them then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would
    you your yours yet get got getting seem seems look looks like think feel feels hey all
    guys folks team anyone someone please thanks thank ok okay us still even really way
    since today yesterday morning afternoon tonight week"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

_WORD = re.compile(r"[a-z0-9][a-z0-9_]*")


def stem(word: str) -> str:
    """Light suffix stripping, enough to conflate plural/verb forms (timeouts -> timeout)."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""), ("ly", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            if suffix == "es" and not word.endswith(("ches", "shes", "sses", "xes", "zes")):
                continue
            return word[: len(word) - len(suffix)] + keep
    return word


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
        return (len(diff) == 2 and diff[1] == diff[0] + 1
                and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


class Analyzer:
    """Turns text into BM25 terms: typo repair, phrase rules, stemming, synonyms."""

    def __init__(self, vocabulary: Mapping[str, int]) -> None:
        # vocabulary: surface word -> number of documents it occurs in (for typo tie-breaks).
        self.vocabulary = dict(vocabulary)
        # Each word and each of its one-letter deletions -> the words that give it. Two words at
        # distance 1 share a key (a deletion of the longer is the shorter; a substitution or a
        # swap leaves a common deletion), so a lookup costs a few dictionary probes per letter of
        # the unknown word instead of a scan of the vocabulary.
        self._by_deletion: dict[str, set[str]] = {}
        self._longest = max(map(len, self.vocabulary), default=0)
        for word in self.vocabulary:
            for key in (word, *_deletions(word)):
                self._by_deletion.setdefault(key, set()).add(word)

    def correct(self, word: str) -> str:
        """The vocabulary word at distance <= 1 from an unknown word of 5+ letters, else itself."""
        if (len(word) < 5 or len(word) > self._longest + 1 or word in self.vocabulary
                or word in STOP_WORDS or not word.isalpha()):
            return word
        candidates: set[str] = set()
        for key in (word, *_deletions(word)):
            candidates |= self._by_deletion.get(key, set())
        best = min(((-self.vocabulary[c], c) for c in candidates if osa_distance_le1(word, c)),
                   default=None)
        return best[1] if best is not None else word

    def repair(self, text: str) -> str:
        lowered = text.lower()
        seen: dict[str, str] = {}

        def fix(match: re.Match[str]) -> str:
            word = match.group(0)
            if word not in seen:
                seen[word] = self.correct(word)
            return seen[word]

        return _WORD.sub(fix, lowered)

    def terms(self, text: str, *, repair: bool = True) -> list[str]:
        raw = self.repair(text) if repair else text.lower()
        out: list[str] = []
        for rx, tokens in _COMPILED_RULES:
            for _ in rx.finditer(raw):
                out.extend(tokens)
        for word in _WORD.findall(raw):
            if word in STOP_WORDS:
                continue
            stemmed = stem(word)
            out.append(stemmed)
            concept = SYNONYMS.get(word) or SYNONYMS.get(stemmed)
            if concept is not None:
                out.append(concept)
        return out


def surface_vocabulary(texts: Iterable[str]) -> dict[str, int]:
    """Word -> number of texts containing it, plus every synonym key (known good spellings)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(set(_WORD.findall(text.lower())))
    for key in SYNONYMS:
        counts[key] += 0
    return dict(counts)


class BM25Index:
    """Okapi BM25 over a fixed set of documents, keyed by id; ranking ties go to the smaller id."""

    def __init__(self, documents: Mapping[str, str], *, k1: float = 1.2, b: float = 0.75,
                 extra_vocabulary: Iterable[str] = ()) -> None:
        self.k1, self.b = k1, b
        self.ids = sorted(documents)
        self.analyzer = Analyzer(surface_vocabulary([*documents.values(), *extra_vocabulary]))
        self.doc_terms = {d: Counter(self.analyzer.terms(documents[d], repair=False)) for d in self.ids}
        self.lengths = {d: sum(c.values()) for d, c in self.doc_terms.items()}
        self.avgdl = sum(self.lengths.values()) / max(len(self.ids), 1)
        df: Counter[str] = Counter()
        for counts in self.doc_terms.values():
            df.update(counts.keys())
        n = len(self.ids)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def score_terms(self, query_terms: Iterable[str]) -> dict[str, tuple[float, list[str]]]:
        """Per document: BM25 score and the query terms it matched (sorted)."""
        unique = sorted(set(query_terms))
        out: dict[str, tuple[float, list[str]]] = {}
        for d in self.ids:
            counts, norm = self.doc_terms[d], 1 - self.b + self.b * self.lengths[d] / self.avgdl
            score, hits = 0.0, []
            for t in unique:
                tf = counts.get(t, 0)
                if tf:
                    score += self.idf[t] * tf * (self.k1 + 1) / (tf + self.k1 * norm)
                    hits.append(t)
            out[d] = (score, hits)
        return out

    def rank(self, text: str) -> list[tuple[str, float]]:
        scores = self.score_terms(self.analyzer.terms(text))
        return sorted(((d, s) for d, (s, _) in scores.items()), key=lambda x: (-x[1], x[0]))
