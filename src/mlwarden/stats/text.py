"""Free text as a monitored feature: the rule that tells text from categories, and mergeable
summaries of a text column (its lengths and its tokens) on a layout fixed by the reference.

A text column is neither a number nor a category: every value of a name or a comment is new, so
counting its values as levels would call each window "unseen". What is compared instead is
language-free: the length of each value (characters), the share of empty values, and its
tokens (runs of Unicode word characters, lower-cased): the share of tokens outside the
reference's vocabulary (out-of-vocabulary, OOV) and the shares of the reference's most frequent
tokens.

The reference's own OOV rate is measured out of sample: the vocabulary is learnt from the
reference's even rows and checked on its odd rows, so a window drawn like the reference shows
about the reference's rate (names and rare words are new in every sample), not zero.

>>> layout = TextLayout.fit(["Braund, Mr. Owen Harris", "Heikkinen, Miss. Laina",
...                          "Allen, Mr. William Henry", "Moran, Mr. James"])
>>> "mr" in layout.top, tokens("Futrelle, Mrs. Jacques Heath (Lily May Peel)")[:3]
(True, ['futrelle', 'mrs', 'jacques'])
>>> s = TextStats.of(layout, ["Allen, Mr. Owen", "", None, 7], 4)
>>> s.count, s.empty, s.nulls, s.invalid, s.oov_rate
(2, 1, 1, 1, 0.0)
>>> TextStats.of(layout, ["ZZZ QQQ"], 1).merge(s).oov_rate
0.4
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlwarden.errors import InvalidInput
from mlwarden.lazy import lazy_module

if TYPE_CHECKING:
    import polars as pl
else:
    pl = lazy_module("polars")  # imported when used: see mlwarden.lazy

__all__ = [
    "TextLayout",
    "TextStats",
    "is_free_text",
    "tokens",
]

_TOKEN = re.compile(r"\w+")
# The rule telling free text from a categorical string column (``is_free_text``)
TEXT_MIN_MEAN_CHARS = 12
TEXT_MIN_MULTI_WORD = 0.5
TEXT_MIN_DISTINCT_SHARE = 0.5
# ten times the levels a categorical profile counts: beyond this many distinct long values a
# column is text however often each repeats (a resampled reference repeats its names)
TEXT_MIN_DISTINCT = 500
_RULE_SAMPLE = 10_000
_MIN_VALUES = 5

# The layout: counted tokens, known tokens, bins of the length
TOP_TOKENS = 50
MAX_VOCABULARY = 20_000
LENGTH_BINS = 20


def tokens(text: str) -> list[str]:
    """The lower-cased runs of Unicode word characters of ``text`` (any script, no language
    model: a language without spaces gives one token per run)."""
    return _TOKEN.findall(text.lower())


def is_free_text(values: Iterable[Any]) -> bool:
    """Whether string values are free text rather than categories.

    The rule: the values are long (at least ``TEXT_MIN_MEAN_CHARS`` characters on average),
    mostly of several words (at least half hold two tokens or more), and mostly distinct (at
    least half of them, or more than ``TEXT_MIN_DISTINCT`` distinct ones). Titanic's ``Name``
    ("Braund, Mr. Owen Harris") is text; ``Sex``, ``Embarked``, ``Ticket`` ("A/5 21171", 7
    characters) are categories. A declared type always wins over this rule.

    >>> is_free_text(["Braund, Mr. Owen Harris", "Heikkinen, Miss. Laina", "Allen, Mr. Henry",
    ...               "Moran, Mr. James", "McCarthy, Mr. Timothy J"])
    True
    >>> is_free_text(["male", "female", "female", "male", "male"])
    False
    """
    strings = [v for v in _rule_sample(values) if isinstance(v, str)]
    if len(strings) < _MIN_VALUES:
        return False
    mean_chars = sum(len(s) for s in strings) / len(strings)
    if mean_chars < TEXT_MIN_MEAN_CHARS:
        return False
    multi_word = sum(len(_TOKEN.findall(s)) >= 2 for s in strings) / len(strings)
    if multi_word < TEXT_MIN_MULTI_WORD:
        return False
    distinct = len(set(strings))
    return distinct / len(strings) >= TEXT_MIN_DISTINCT_SHARE or distinct > TEXT_MIN_DISTINCT


def _rule_sample(values: Iterable[Any]) -> list[Any]:
    """At most ``_RULE_SAMPLE`` of ``values``, evenly spaced, nulls left out: the rule reads a
    sample, and a reference of a million strings is not turned into Python objects for it
    (that was most of profiling such a reference)."""
    if isinstance(values, pl.Series):
        present = values.drop_nulls()
        step = max(1, -(-present.len() // _RULE_SAMPLE))
        return present.gather_every(step).to_list()
    if isinstance(values, pd.Series):
        present_pd = values.dropna()
        step = max(1, -(-len(present_pd) // _RULE_SAMPLE))
        return list(present_pd.iloc[::step].tolist())
    seq = values if isinstance(values, list | tuple | np.ndarray) else list(values)
    step = max(1, -(-len(seq) // _RULE_SAMPLE))
    return [v for v in list(seq[::step]) if v is not None]


def _values(col: Any) -> pd.Series:
    """Any column as a pandas Series of objects."""
    if isinstance(col, pl.Series):
        return pd.Series(col.to_list(), dtype=object)
    if isinstance(col, pd.Series):
        return col
    return pd.Series(col, dtype=object)


@dataclass(frozen=True)
class _Split:
    """A column's null, invalid and string values."""

    texts: list[str]
    nulls: int
    invalid: int


def _split(col: Any) -> _Split:
    series = _values(col)
    null = series.isna().to_numpy()
    present = series.to_numpy(dtype=object)[~null] if null.any() else series.tolist()
    texts = [v for v in present if isinstance(v, str)]
    return _Split(texts, int(null.sum()), len(present) - len(texts))


def _token_counts(texts: list[str]) -> Counter[str]:
    """Counts by token over ``texts``: one pass of the pattern over them all (a newline, not a
    word character, keeps two values' tokens apart), twice as fast as one ``findall`` each."""
    return Counter(_TOKEN.findall("\n".join(texts).lower()))


@dataclass(frozen=True)
class TextLayout:
    """What the reference fixes for a text column: the bins of the length, the counted (most
    frequent) tokens and the vocabulary (the known tokens, learnt from the even rows)."""

    length_edges: np.ndarray
    top: tuple[str, ...]
    vocabulary: frozenset[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.top)})

    @property
    def index(self) -> dict[str, int]:
        return self._index  # type: ignore[attr-defined,no-any-return]

    @property
    def n_bins(self) -> int:
        return int(self.length_edges.size + 1)

    @classmethod
    def fit(cls, col: Any) -> TextLayout:
        texts = _split(col).texts
        lengths = np.fromiter(map(len, texts), dtype=float, count=len(texts))
        if lengths.size:
            qs = np.quantile(lengths, np.linspace(0.0, 1.0, LENGTH_BINS + 1)[:-1])
            edges = np.unique(np.append(qs, lengths.max() + 1.0))
        else:
            edges = np.empty(0)
        counts = _token_counts(texts[::2])
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        top = tuple(t for t, _ in ordered[:TOP_TOKENS])
        vocabulary = frozenset(t for t, _ in ordered[:MAX_VOCABULARY])
        return cls(edges.astype(float), top, vocabulary)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "text",
            "length_edges": self.length_edges.tolist(),
            "top": list(self.top),
            "vocabulary": sorted(self.vocabulary),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextLayout:
        return cls(
            np.asarray(data["length_edges"], dtype=float),
            tuple(data["top"]),
            frozenset(data["vocabulary"]),
        )


@dataclass
class TextStats:
    """Mergeable summary of one text column on the reference's :class:`TextLayout`.

    ``count`` strings (``empty`` of them blank), ``nulls``, ``invalid`` values that are not
    strings, ``absent`` rows of chunks without the column; the lengths (characters) as a
    histogram on the layout's bins with their sum, sum of squares, min and max; ``tokens`` in
    all; of the ``checked`` tokens (all of a window's, the odd rows' of the reference), how many
    are each counted token (``top``), another known one (``known_other``) or unknown (``oov``).
    """

    layout: TextLayout = field(repr=False)
    count: int = 0
    nulls: int = 0
    invalid: int = 0
    absent: int = 0
    empty: int = 0
    length_sum: float = 0.0
    length_sq: float = 0.0
    length_min: float = math.inf
    length_max: float = -math.inf
    length_hist: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    tokens: int = 0
    checked: int = 0
    top: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    known_other: int = 0
    oov: int = 0

    def __post_init__(self) -> None:
        if self.length_hist.size == 0:
            self.length_hist = np.zeros(self.layout.n_bins, dtype=np.int64)
        if self.top.size == 0:
            self.top = np.zeros(len(self.layout.top), dtype=np.int64)

    @classmethod
    def of(cls, layout: TextLayout, col: Any, n_rows: int) -> TextStats:
        """The summary of a window's column (``None``: the column is absent)."""
        if col is None:
            return cls(layout, absent=n_rows)
        split = _split(col)
        out = cls(layout, nulls=split.nulls, invalid=split.invalid)
        out._add_lengths(split.texts)
        counts = _token_counts(split.texts)
        out.tokens = sum(counts.values())
        out._check(counts)
        return out

    @classmethod
    def reference(cls, layout: TextLayout, col: Any, n_rows: int) -> TextStats:
        """The reference's summary: lengths of every value, tokens checked on the odd rows only
        (the vocabulary was learnt from the even ones)."""
        if col is None:
            return cls(layout, absent=n_rows)
        split = _split(col)
        out = cls(layout, nulls=split.nulls, invalid=split.invalid)
        out._add_lengths(split.texts)
        out.tokens = sum(_token_counts(split.texts).values())
        out._check(_token_counts(split.texts[1::2]))
        return out

    def with_tokens_of(self, held_out: TextStats) -> TextStats:
        """This summary with the token checks of ``held_out`` (a reference summarised on more
        rows than its layout was fitted on, as a lake's: its OOV rate must stay out of sample)."""
        return replace(
            self,
            checked=held_out.checked,
            top=held_out.top.copy(),
            known_other=held_out.known_other,
            oov=held_out.oov,
        )

    def _add_lengths(self, texts: list[str]) -> None:
        lengths = np.fromiter(map(len, texts), dtype=float, count=len(texts))
        self.count = int(lengths.size)
        if not lengths.size:
            return
        self.empty = sum(1 for text in texts if not text.strip())
        self.length_sum = float(lengths.sum())
        self.length_sq = float(np.square(lengths).sum())
        self.length_min, self.length_max = float(lengths.min()), float(lengths.max())
        where = np.searchsorted(self.layout.length_edges, lengths, side="right")
        self.length_hist = np.bincount(where, minlength=self.layout.n_bins).astype(np.int64)

    def _check(self, counts: Counter[str]) -> None:
        index, vocabulary = self.layout.index, self.layout.vocabulary
        for token, n in counts.items():
            self.checked += n
            i = index.get(token)
            if i is not None:
                self.top[i] += n
            elif token in vocabulary:
                self.known_other += n
            else:
                self.oov += n

    # -- derived

    @property
    def rows(self) -> int:
        return self.count + self.nulls + self.invalid + self.absent

    @property
    def mean_length(self) -> float:
        return self.length_sum / self.count if self.count else 0.0

    @property
    def std_length(self) -> float:
        if self.count < 2:
            return 0.0
        var = (self.length_sq - self.length_sum**2 / self.count) / (self.count - 1)
        return math.sqrt(max(var, 0.0))

    @property
    def oov_rate(self) -> float:
        """The share of checked tokens outside the reference's vocabulary."""
        return self.oov / self.checked if self.checked else 0.0

    def token_counts(self) -> np.ndarray:
        """Counts of each counted token, then of the other known tokens (OOV left out)."""
        return np.append(self.top, self.known_other)

    def top_shares(self, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` most frequent counted tokens with their share of the checked tokens."""
        if not self.checked:
            return []
        order = np.argsort(-self.top, kind="stable")[:n]
        return [(self.layout.top[i], float(self.top[i]) / self.checked) for i in order]

    def summary(self) -> dict[str, Any]:
        """What a person reads of it: mean length, empty and unknown-word rates, top tokens."""
        return {
            "values": self.count,
            "mean_length": self.mean_length,
            "empty_rate": self.empty / self.count if self.count else None,
            "oov_rate": self.oov_rate,
            "top_tokens": dict(self.top_shares()),
        }

    # -- merging and storage

    def merge(self, other: TextStats) -> TextStats:
        return TextStats(
            self.layout,
            count=self.count + other.count,
            nulls=self.nulls + other.nulls,
            invalid=self.invalid + other.invalid,
            absent=self.absent + other.absent,
            empty=self.empty + other.empty,
            length_sum=self.length_sum + other.length_sum,
            length_sq=self.length_sq + other.length_sq,
            length_min=min(self.length_min, other.length_min),
            length_max=max(self.length_max, other.length_max),
            length_hist=self.length_hist + other.length_hist,
            tokens=self.tokens + other.tokens,
            checked=self.checked + other.checked,
            top=self.top + other.top,
            known_other=self.known_other + other.known_other,
            oov=self.oov + other.oov,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "text",
            "count": self.count,
            "nulls": self.nulls,
            "invalid": self.invalid,
            "absent": self.absent,
            "empty": self.empty,
            "length_sum": self.length_sum,
            "length_sq": self.length_sq,
            "length_min": self.length_min if self.count else None,
            "length_max": self.length_max if self.count else None,
            "length_hist": self.length_hist.tolist(),
            "tokens": self.tokens,
            "checked": self.checked,
            "top": self.top.tolist(),
            "known_other": self.known_other,
            "oov": self.oov,
        }

    @classmethod
    def from_dict(cls, layout: TextLayout, data: Mapping[str, Any]) -> TextStats:
        hist = np.asarray(data["length_hist"], dtype=np.int64)
        top = np.asarray(data["top"], dtype=np.int64)
        if hist.size != layout.n_bins or top.size != len(layout.top):
            raise InvalidInput("stored text summary does not match the layout")
        lo, hi = data.get("length_min"), data.get("length_max")
        return cls(
            layout,
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            invalid=int(data["invalid"]),
            absent=int(data["absent"]),
            empty=int(data["empty"]),
            length_sum=float(data["length_sum"]),
            length_sq=float(data["length_sq"]),
            length_min=math.inf if lo is None else float(lo),
            length_max=-math.inf if hi is None else float(hi),
            length_hist=hist,
            tokens=int(data["tokens"]),
            checked=int(data["checked"]),
            top=top,
            known_other=int(data["known_other"]),
            oov=int(data["oov"]),
        )
