"""Facts pulled out of an engineer's words: numbers with units, "after deploy", times, features.

The facts are what escalators of a playbook's severity rule test (see ``schema.FactName``), so
"p99 went from 200ms to 2s" raises a latency playbook to critical (ratio 10) while "p99 is a
bit up" keeps its base severity. Extraction is regular expressions only: same text, same facts.

Every expression runs in time linear in the text (the route takes text from anyone with a
viewer token): a number starts only where no digit or dot precedes it and its digits are
matched possessively, symptom words start at a word boundary, and every gap between two parts
is bounded (at most 40 characters). Without that, one run of 20,000 digits cost a minute of
CPU: each of its positions started a number that scanned to the end of the run.

>>> f = extract_facts("p99 went from 200ms to 2s after the deploy")
>>> (f.latency_before_ms, f.latency_after_ms, f.latency_ratio, f.after_deploy)
(200.0, 2000.0, 10.0, True)
"""

# Regular-expression tables read better unbroken.
# ruff: noqa: E501
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from mlwarden.diagnose.schema import Escalator, Playbook
from mlwarden.domain import Severity

_NUM = r"(?<![\d.])(\d++(?:\.\d++)?)"
_TIME_UNIT_MS = {
    "ms": 1.0,
    "millisecond": 1.0,
    "milliseconds": 1.0,
    "s": 1000.0,
    "sec": 1000.0,
    "secs": 1000.0,
    "second": 1000.0,
    "seconds": 1000.0,
    "m": 60_000.0,
    "min": 60_000.0,
    "mins": 60_000.0,
    "minute": 60_000.0,
    "minutes": 60_000.0,
}
_DURATION_MIN = {
    "min": 1,
    "mins": 1,
    "minute": 1,
    "minutes": 1,
    "h": 60,
    "hr": 60,
    "hrs": 60,
    "hour": 60,
    "hours": 60,
    "d": 1440,
    "day": 1440,
    "days": 1440,
    "week": 10080,
    "weeks": 10080,
}
_METRICS = r"(accuracy|auc|f1|precision|recall|ctr|map|ndcg|r2|score|conversion)"
_DROP = r"(dropped|drop|fell|falls?|down|decreased|declined|tanked|lost|degraded)"
_SHARE_WORDS = {"half": 0.5, "most": 0.6, "majority": 0.6, "all": 1.0, "every": 1.0}
_POPULATION = r"(traffic|requests|calls|rows|records|predictions|users|customers|events|signups|devices|sensors|readings|transactions)"

_LATENCY_FROM_TO = re.compile(
    rf"{_NUM}\s*(ms|milliseconds?|s|secs?|seconds?)\b\s*(?:to|->|→)\s*{_NUM}\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)\b"
)
_METRIC_FROM_TO = re.compile(
    rf"{_METRICS}\D{{0,40}}?from\s+{_NUM}\s*(%?)\s*(?:to|->|→)\s+{_NUM}\s*(%?)"
)
_METRIC_DROP = re.compile(
    rf"{_METRICS}\D{{0,30}}?{_DROP}\s+(?:by\s+)?(?:about\s+)?{_NUM}\s*(%|points?|pp|pts)"
)
_DROP_METRIC = re.compile(
    rf"{_DROP}\s+(?:by\s+)?{_NUM}\s*(%|points?|pp|pts)\s+(?:in\s+|of\s+)?{_METRICS}"
)
_RATIO_WORDS = re.compile(rf"\b(doubled|tripled|quadrupled|{_NUM}\s?x)\b")
_SHARE = re.compile(rf"{_NUM}\s*%\s+of\s+(?:the\s+|all\s+|our\s+)?{_POPULATION}")
_SHARE_WORD = re.compile(rf"\b(half|most|majority)\s+(?:of\s+)?(?:the\s+|our\s+)?{_POPULATION}")
_NULL_RATE = re.compile(
    rf"\b(?:null|nan|missing|empty)\w*+\D{{0,40}}?(?:from\s+{_NUM}\s*%\s*to\s+)?{_NUM}\s*%"
)
_ERROR_RATE = re.compile(
    rf"(?:\berror rate|\berrors?|\bfail\w*+|\b5\d\d(?!\d)|\b5xx)\D{{0,40}}?{_NUM}\s*%|{_NUM}\s*%\s+of\s+(?:the\s+)?(?:calls|requests)\D{{0,40}}fail"
)
_ALL = re.compile(
    rf"\b(all|every|literally every|100%\s+of)\s+(?:the\s+|our\s+)?(?:single\s+)?{_POPULATION[:-1]}|\w+)\b|for everyone|for every (customer|user|request)"
)
_DEPLOY = re.compile(
    r"after (?:the |we |our |a )?(?:deploy|release|rollout|roll ?out|promot|ship)|"
    r"since (?:the )?(?:deploy|release)|rolled out|\bnew (?:model )?version\b|"
    r"\bdeploy(?:ed|ment)?\b|\bpromoted\b|\bv\d+\b"
)
_SINCE = re.compile(
    r"\b(?:since|at|from|after|started at|around)\s+(?:the\s+)?((?:[01]?\d|2[0-3]):[0-5]\d|(?:1[0-2]|0?[1-9])\s?(?:am|pm)|noon|midnight|yesterday|this morning|last night|monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b"
)
_DURATION = re.compile(
    rf"\b(?:for|over|last|at|by|of|past)\s+(?:about\s+|~)?{_NUM}\s*(mins?|minutes?|h|hrs?|hours?|d|days?|weeks?)\b"
)
_QUANTITY = re.compile(
    rf"{_NUM}\s*(ms|milliseconds?|s|secs?|seconds?|%|x|pp|points?|gb|mb|kb|hours?|h|mins?|minutes?|days?|weeks?)\b"
)
_BACKTICK = re.compile(r"`([A-Za-z_][A-Za-z0-9_.]*)`")
_IDENT = re.compile(r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b")
_NAME_CHARS = re.compile(r"[a-z0-9_]+")


class Quantity(BaseModel):
    value: float
    unit: str
    text: str


class Facts(BaseModel):
    """What the text says in numbers and flags; ``None`` means "not mentioned"."""

    quantities: list[Quantity] = Field(default_factory=list)
    latency_before_ms: float | None = None
    latency_after_ms: float | None = None
    latency_ratio: float | None = None
    metric: str | None = None
    metric_before: float | None = None
    metric_after: float | None = None
    metric_drop_points: float | None = None
    traffic_share: float | None = None
    null_rate: float | None = None
    error_rate: float | None = None
    duration_minutes: float | None = None
    all_affected: bool = False
    after_deploy: bool = False
    since: str | None = None
    features: list[str] = Field(default_factory=list)

    def value(self, name: str) -> Any:
        return getattr(self, name)

    def describe(self) -> list[str]:
        """Short human sentences for each fact found, in a fixed order."""
        out: list[str] = []
        if self.latency_ratio is not None:
            out.append(
                f"latency {self.latency_before_ms:g} ms -> {self.latency_after_ms:g} ms "
                f"(x{self.latency_ratio:g})"
                if self.latency_before_ms is not None
                else f"latency x{self.latency_ratio:g}"
            )
        if self.metric_drop_points is not None:
            out.append(f"{self.metric or 'metric'} down {self.metric_drop_points:g} points")
        for name, label in (
            ("traffic_share", "share of traffic affected"),
            ("null_rate", "null rate"),
            ("error_rate", "error rate"),
        ):
            v = getattr(self, name)
            if v is not None:
                out.append(f"{label} {v * 100:g}%")
        if self.duration_minutes is not None:
            out.append(f"lasting {self.duration_minutes:g} min")
        if self.all_affected:
            out.append("all traffic affected")
        if self.after_deploy:
            out.append("after a deploy")
        if self.since:
            out.append(f"since {self.since}")
        if self.features:
            out.append("features: " + ", ".join(self.features))
        return out


def _to_points(value: float, percent: bool) -> float:
    return value if percent or value > 1 else value * 100


def extract_facts(
    text: str, known_features: Iterable[str] = (), vocabulary: Iterable[str] = ()
) -> Facts:
    """Extract :class:`Facts` from free text; ``known_features`` are matched as whole words.

    Identifiers in backticks or in snake_case are taken as feature names unless they are
    ordinary vocabulary words.
    """
    low = text.lower()
    facts = Facts()
    facts.quantities = [
        Quantity(value=float(m.group(1)), unit=m.group(2), text=m.group(0))
        for m in _QUANTITY.finditer(low)
    ]
    if m := _LATENCY_FROM_TO.search(low):
        before = float(m.group(1)) * _TIME_UNIT_MS[m.group(2)]
        after = float(m.group(3)) * _TIME_UNIT_MS[m.group(4)]
        if before > 0:
            facts.latency_before_ms, facts.latency_after_ms = before, after
            facts.latency_ratio = round(after / before, 3)
    elif (m := _RATIO_WORDS.search(low)) and re.search(r"latenc|p9\d|slow|response time", low):
        word = m.group(1)
        ratio = {"doubled": 2.0, "tripled": 3.0, "quadrupled": 4.0}.get(word)
        facts.latency_ratio = ratio if ratio is not None else float(m.group(2))
    if m := _METRIC_FROM_TO.search(low):
        before = _to_points(float(m.group(2)), m.group(3) == "%")
        after = _to_points(float(m.group(4)), m.group(5) == "%")
        facts.metric, facts.metric_before, facts.metric_after = m.group(1), before, after
        facts.metric_drop_points = round(before - after, 3) if before > after else None
    elif m := _METRIC_DROP.search(low):
        facts.metric, facts.metric_drop_points = m.group(1), float(m.group(3))
    elif m := _DROP_METRIC.search(low):
        facts.metric, facts.metric_drop_points = m.group(4), float(m.group(2))
    if m := _SHARE.search(low):
        facts.traffic_share = float(m.group(1)) / 100
    elif m := _SHARE_WORD.search(low):
        facts.traffic_share = _SHARE_WORDS[m.group(1)]
    if m := _NULL_RATE.search(low):
        facts.null_rate = float(m.group(2)) / 100
    if m := _ERROR_RATE.search(low):
        facts.error_rate = float(m.group(1) or m.group(2)) / 100
    facts.all_affected = bool(_ALL.search(low))
    facts.after_deploy = bool(_DEPLOY.search(low))
    if m := _SINCE.search(low):
        facts.since = m.group(1)
    if m := _DURATION.search(low):
        facts.duration_minutes = float(m.group(1)) * _DURATION_MIN[m.group(2)]
    facts.features = _features(text, known_features, set(vocabulary))
    return facts


def _features(text: str, known: Iterable[str], vocabulary: set[str]) -> list[str]:
    low = text.lower()
    words = set(_NAME_CHARS.findall(low))
    found: list[str] = []
    for name in known:
        if _mentions(low, words, name.lower()):
            found.append(name)
    found.extend(_BACKTICK.findall(text))
    found.extend(w for w in _IDENT.findall(text) if w not in vocabulary)
    return sorted(dict.fromkeys(found))


def _mentions(low: str, words: set[str], name: str) -> bool:
    """``name`` occurs in ``low`` as a whole word (letters, digits and ``_`` delimit words).

    A plain name is a set lookup among the text's words; a name with other characters
    ("petal.length") is found with ``str.find``, linear in the text, unlike a regular expression
    per name whose cost grows with the name's length times the text's.
    """
    if not name:
        return False
    if _NAME_CHARS.fullmatch(name):
        return name in words
    start = low.find(name)
    while start >= 0:
        end = start + len(name)
        before = low[start - 1] if start else " "
        after = low[end] if end < len(low) else " "
        if not _is_name_char(before) and not _is_name_char(after):
            return True
        start = low.find(name, start + 1)
    return False


def _is_name_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def escalate(playbook: Playbook, facts: Facts) -> tuple[Severity, list[str]]:
    """The playbook's severity given the facts, and the reasons of every escalator that fired."""
    severity, reasons = playbook.severity.base, []
    for esc in playbook.severity.escalators:
        if fact_holds(esc, facts):
            severity = severity.raise_to(esc.to)
            reasons.append(esc.reason)
    return severity, reasons


def fact_holds(esc: Escalator, facts: Facts) -> bool:
    value = facts.value(esc.fact)
    if esc.above is None:
        return bool(value)
    return value is not None and float(value) > esc.above
