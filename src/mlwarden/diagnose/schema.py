"""The playbook schema: one known production-ML failure scenario, validated on load.

A playbook is the unit of knowledge shared by both diagnosis paths: diagnosis from free text
matches an engineer's words against ``symptoms.phrases``; incident diagnosis matches detector
findings against ``symptoms.finding_kinds`` and ``symptoms.signal_patterns``. Severity starts at
``severity.base`` and each escalator whose fact holds raises it (never lowers it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlwarden.domain import ActionKind, FindingKind, Severity

# Facts an escalator may test. Numeric facts need a threshold ``above``; boolean ones must not.
NUMERIC_FACTS = (
    "traffic_share",  # fraction of traffic affected, 0..1
    "metric_drop_points",  # drop of accuracy/F1/AUC-like metric in percentage points
    "latency_ratio",  # latency after / before
    "error_rate",  # fraction of requests failing, 0..1
    "null_rate",  # fraction of nulls in the worst feature, 0..1
    "duration_minutes",  # how long the problem has lasted
)
BOOLEAN_FACTS = ("all_affected", "after_deploy")
FactName = Literal[
    "traffic_share",
    "metric_drop_points",
    "latency_ratio",
    "error_rate",
    "null_rate",
    "duration_minutes",
    "all_affected",
    "after_deploy",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignalPattern(_Strict):
    """A pattern over detector findings (or deploy/config events) that points at this scenario.

    ``check`` is matched case-insensitively as a substring of the finding's detector, statistic,
    ``evidence["check"]`` and ``evidence["signal"]``. ``absent: true`` means the pattern holds
    when *no* finding matches (e.g. concept drift: performance drops while inputs stay stable).
    ``required: true`` rules the playbook out when the pattern does not match (a bad deploy
    needs a deploy).
    """

    kind: FindingKind | Literal["event"]
    check: str | None = None
    absent: bool = False
    required: bool = False
    weight: float = Field(default=1.0, gt=0, le=5)

    @model_validator(mode="after")
    def _check_is_text(self) -> SignalPattern:
        # YAML reads a bare `check: null` (or `~`) as no check at all, which would match every
        # finding of the kind: refuse it so the author quotes the word
        if "check" in self.model_fields_set and self.check is None:
            raise ValueError('check is empty; to match the word null, quote it: check: "null"')
        return self


class Symptoms(_Strict):
    finding_kinds: list[FindingKind] = Field(default_factory=list)
    signal_patterns: list[SignalPattern] = Field(default_factory=list)
    phrases: list[str] = Field(min_length=3)


class Escalator(_Strict):
    """Raise severity to ``to`` when ``fact`` holds (is true, or exceeds ``above``)."""

    to: Severity
    fact: FactName
    above: float | None = None
    reason: str = Field(min_length=3)

    @model_validator(mode="after")
    def _threshold_matches_fact(self) -> Escalator:
        if self.fact in NUMERIC_FACTS and self.above is None:
            raise ValueError(f"escalator on numeric fact {self.fact!r} needs 'above'")
        if self.fact in BOOLEAN_FACTS and self.above is not None:
            raise ValueError(f"escalator on boolean fact {self.fact!r} takes no 'above'")
        return self


class SeverityRule(_Strict):
    base: Severity
    escalators: list[Escalator] = Field(default_factory=list)


class Check(_Strict):
    """Something concrete to run now: a query, a command, a dashboard to open.

    ``query`` is SQL on mlwarden's own database (SQLite or PostgreSQL: the bundled ones are
    written to run on both, and a test runs them on both); ``source_query`` is SQL on the user's
    own systems (their event log, feature tables), whose table names are theirs to adapt.
    ``MODEL``, ``FEATURE`` and ``INCIDENT`` are filled where known (``diagnose.checks``).
    """

    title: str = Field(min_length=3)
    kind: Literal["query", "source_query", "command", "dashboard", "code"]
    run: str = Field(min_length=3)


class Action(_Strict):
    """A recommended action in the agent's vocabulary, with the human steps around it."""

    action: ActionKind
    description: str = Field(min_length=3)


class Playbook(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    title: str = Field(min_length=3)
    summary: str = Field(min_length=10)
    # the agent's diagnoses (rows of its decision table) this playbook can be the cause of: an
    # incident's report picks its playbook among these first, so header and body agree
    explains: list[str] = Field(default_factory=list)
    symptoms: Symptoms
    severity: SeverityRule
    checks: list[Check] = Field(min_length=2)
    causes: list[str] = Field(min_length=2, description="likely causes, most likely first")
    actions: list[Action] = Field(min_length=1)
    confirm: list[str] = Field(min_length=1, description="how to confirm the fix worked")

    def symptom_text(self) -> str:
        """The text the assistant retrieves over: title, summary and phrases."""
        return "\n".join([self.title, self.summary, *self.symptoms.phrases])
