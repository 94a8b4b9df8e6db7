"""The concepts of mlwarden (docs/architecture.md) as typed values shared by every layer.

These are plain pydantic models: the store persists them, the API sends them, the monitor and
agent read them. They import nothing from the rest of mlwarden.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

# Ids, version numbers and revisions live in INTEGER columns, 32-bit on PostgreSQL: a larger
# one names nothing, and is refused before it reaches the database driver (which would fail).
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=0, le=MAX_ID)]


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class FeatureType(StrEnum):
    NUMERIC = "numeric"
    INTEGER = "integer"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    # free text (a name, a comment, a query): validated as a string of bounded length,
    # profiled by its length and its tokens (``stats.text``), never as one category per value
    TEXT = "text"


# The longest text value accepted when a feature declares no ``max_length`` (in characters)
DEFAULT_TEXT_MAX_LENGTH = 10_000


class FindingKind(StrEnum):
    """The fixed vocabulary of what detectors report (each described in
    ``detect.registry.FINDING_KINDS``)."""

    DATA_DRIFT = "data_drift"
    CONCEPT_DRIFT = "concept_drift"
    PREDICTION_DRIFT = "prediction_drift"
    DATA_QUALITY = "data_quality"
    LATENCY = "latency"
    ERROR_RATE = "error_rate"
    FRESHNESS = "freshness"
    ANOMALY = "anomaly"


class ActionKind(StrEnum):
    """The fixed vocabulary of what the agent can do."""

    NONE = "none"
    ALERT = "alert"
    ROLLBACK = "rollback"
    FALLBACK = "fallback"
    RETRAIN = "retrain"
    DISABLE = "disable"
    CANARY = "canary"
    SHADOW = "shadow"
    PROMOTE = "promote"
    REPAIR = "repair"


class Severity(StrEnum):
    """How bad an incident is. The members are in order, least severe first: ``rank``,
    ``raise_to``, ``at_least`` and ``worst`` read that order, and nothing else defines one.

    >>> Severity.worst(["medium", "critical", "low"])
    <Severity.CRITICAL: 'critical'>
    >>> Severity.HIGH.at_least(Severity.MEDIUM), Severity.LOW.raise_to(Severity.HIGH).value
    (True, 'high')
    """

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for the least severe level, one more for each level above it."""
        return list(Severity).index(self)

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank

    def raise_to(self, other: Severity) -> Severity:
        """The more severe of the two: escalators only ever raise severity."""
        return other if other.rank > self.rank else self

    @classmethod
    def worst(cls, levels: Iterable[str]) -> Severity | None:
        """The most severe of ``levels`` (their values or members); None when there are none."""
        members = [cls(level) for level in levels]
        return max(members, key=lambda level: level.rank) if members else None


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        order = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
        return order.index(self) >= order.index(needed)


class IncidentState(StrEnum):
    """Where an incident is in its life (``store.incidents.TRANSITIONS`` says where it may go
    next).

    * open → acting → verifying → resolved: the agent's remedy, verified;
    * escalated: handed to people (a remedy failed or did not help), dismissed: noise;
    * superseded: a new version went live while a performance incident was open; the model is
      judged anew from there (the drop may now be the new version's, the old decision stale);
    * accepted: drift that persisted without harm (or a drop on moving inputs that no remedy
      serves better than doing nothing) is no longer worked on, but remembered, so the same
      drift does not open a new incident every window nor absorb a new failure. It is resolved
      once the drift is gone, reopened when an operator undoes the acceptance.

    A member equals its value, so rows compared with ``"open"`` keep working:

    >>> IncidentState.OPEN == "open", IncidentState("accepted") is IncidentState.ACCEPTED
    (True, True)
    """

    OPEN = "open"
    ACTING = "acting"
    VERIFYING = "verifying"
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    DISMISSED = "dismissed"
    SUPERSEDED = "superseded"
    ACCEPTED = "accepted"


class ActionState(StrEnum):
    """Where a journaled action is (``store.journal.TRANSITIONS``): ``pending`` (journaled, not
    started) → ``running`` (started; the revision before is recorded) → ``done`` (the revision
    after is recorded) or ``failed`` (the deployment is as it was); ``done`` → ``undone``."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNDONE = "undone"


class ApprovalState(StrEnum):
    """Where a request for approval is (``store.approvals.TRANSITIONS``): ``pending`` until an
    operator approves or rejects it, it expires, or the agent withdraws it (its grounds
    changed); every other state is final."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class FeatureSpec(BaseModel):
    """One input feature of a model: its type and, when known, what values are allowed."""

    name: str = Field(min_length=1)
    type: FeatureType = FeatureType.NUMERIC
    categories: list[str] | None = None
    # a non-finite bound can be neither stored as JSON nor compared with: refused here
    minimum: float | None = Field(default=None, allow_inf_nan=False)
    maximum: float | None = Field(default=None, allow_inf_nan=False)
    nullable: bool = True
    # the longest value of a text feature, in characters (``DEFAULT_TEXT_MAX_LENGTH`` if None)
    max_length: int | None = Field(default=None, ge=1, le=1_000_000)
    # False: the model takes the input but does not use it (a raw column its own cleaning
    # drops, such as a name): validated like any other, never watched for drift or quality,
    # which would flag every window of a column that is unique per row
    monitored: bool = True

    @model_validator(mode="after")
    def _check_range(self) -> FeatureSpec:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(
                f"feature {self.name!r}: minimum {self.minimum} > maximum {self.maximum}"
            )
        return self


class ModelSpec(BaseModel):
    """A monitored model: name, task, feature schema, target and positive class."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    task: Task
    features: list[FeatureSpec] = Field(min_length=1)
    target: str | None = None
    positive_class: str | int | None = None
    description: str = ""

    @field_validator("features")
    @classmethod
    def _unique_names(cls, features: list[FeatureSpec]) -> list[FeatureSpec]:
        seen: set[str] = set()
        for feature in features:
            if feature.name in seen:
                raise ValueError(f"feature {feature.name!r} is listed twice")
            seen.add(feature.name)
        return features

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


Scalar = str | int | float | bool


class FeatureRepair(BaseModel):
    """How the gateway mends one feature of a request before a model sees it.

    Each rule touches only values that are broken in a way the rule names, so a repair left in
    place changes nothing once the inputs are clean again: a null (or a missing feature) takes
    ``fill`` (or a value predicted from the request's other features, see ``fill_coefficients``);
    a number outside ``[low, high]`` whose division by ``divide_by`` lands inside it
    is divided (a unit change by that factor, undone), or every number when ``divide_all``
    (a factor that is no power of ten, miles to kilometres: the converted values overlap the
    plausible range, so one value cannot tell; such a rule is not the identity on clean data
    and is released as soon as the inputs are clean again); a category outside ``known`` becomes
    ``unseen_to``; a request that lacks the feature but carries ``renamed_from`` has that key
    renamed back. The request is recorded as it was sent: the monitor keeps seeing the fault.
    """

    model_config = {"extra": "forbid"}

    # a request without the feature but with this key instead (an upstream rename): its value
    renamed_from: str | None = Field(default=None, min_length=1, max_length=256)
    fill: Scalar | None = None
    # a null is better guessed from the request's other numbers when they predict it: the
    # least-squares line ``fill_intercept + sum(coef * feature)`` fitted on the training
    # sample, clipped to [low, high]; ``fill`` when one of those numbers is missing too
    fill_intercept: float | None = None
    fill_coefficients: dict[str, float] | None = Field(default=None, max_length=1_000)
    divide_by: float | None = None
    divide_all: bool = False
    low: float | None = None
    high: float | None = None
    known: list[Scalar] | None = Field(default=None, max_length=10_000)
    unseen_to: Scalar | None = None

    @model_validator(mode="after")
    def _finite(self) -> FeatureRepair:
        numbers = [self.divide_by, self.low, self.high, self.fill_intercept]
        numbers += list((self.fill_coefficients or {}).values())
        numbers += [v for v in (self.fill, self.unseen_to) if isinstance(v, float)]
        if any(v is not None and not math.isfinite(v) for v in numbers):
            raise ValueError("repair values must be finite numbers")
        if self.divide_by is not None:
            if self.divide_by <= 0:
                raise ValueError("divide_by must be positive")
            if self.low is None or self.high is None or self.low > self.high:
                raise ValueError("divide_by needs the plausible range low <= high")
        elif self.divide_all:
            raise ValueError("divide_all needs divide_by")
        return self

    @cached_property
    def known_values(self) -> tuple[frozenset[Scalar], frozenset[str]]:
        """``known`` as a set, and as text (a code sent as "3" is the known 3): looked up for
        every value of every request, so built once."""
        known = self.known or []
        return frozenset(known), frozenset(str(k) for k in known)


class DeploymentState(BaseModel):
    """The routing of a model: which versions answer, and how. Each change is a new revision."""

    live_version: Id | None = None
    fallback_version: Id | None = None
    canary_version: Id | None = None
    canary_weight: float = Field(default=0.0, ge=0.0, le=1.0)
    shadow_version: Id | None = None
    disabled: bool = False
    default_response: Any = None
    # features mended at the gateway before any version answers (see FeatureRepair)
    input_repair: dict[str, FeatureRepair] = Field(default_factory=dict, max_length=1_000)


class Deployment(DeploymentState):
    model: str
    environment: str = "production"
    revision: int
    actor: str
    reason: str
    created_at: datetime


class Record(BaseModel):
    """One prediction, served by the gateway or logged by a model served elsewhere."""

    id: str
    model: str
    version: int | None = None
    timestamp: datetime
    features: dict[str, Any]
    prediction: Any = None
    scores: dict[str, float] | float | None = None
    latency_ms: float | None = None
    error: str | None = None
    served_by: Literal["live", "fallback", "canary", "shadow", "default", "external"] = "external"


MASKED = "***"
# A header or query parameter whose name holds one of these carries a credential
_SECRET_WORDS = ("auth", "token", "secret", "key", "password", "passwd", "credential", "cookie",
                 "session", "signature")  # fmt: skip


def is_secret_name(name: str) -> bool:
    """True for a header or parameter name that carries a credential (``Authorization``,
    ``X-Api-Key``, ``access_token``, ``Cookie`` ...)."""
    lowered = name.lower().replace("-", "_")
    return any(word in lowered for word in _SECRET_WORDS)


def mask_url(url: str) -> str:
    """``url`` with the password of its user part and secret query values replaced by
    ``***`` (``https://u:***@host/p?api_key=***&n=1``)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        name, has_password, _ = user.partition(":")
        netloc = f"{name}:{MASKED}@{host}" if has_password else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASKED if is_secret_name(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_endpoint(endpoint: dict[str, Any] | None) -> dict[str, Any] | None:
    """A remote version's endpoint as shown to anyone: header values that are credentials
    and secrets in the URL are ``***`` (stored and sent to the endpoint unchanged)."""
    if endpoint is None:
        return None
    shown = dict(endpoint)
    headers = endpoint.get("headers")
    if isinstance(headers, dict):
        shown["headers"] = {k: MASKED if is_secret_name(str(k)) else v for k, v in headers.items()}
    if isinstance(endpoint.get("url"), str):
        shown["url"] = mask_url(endpoint["url"])
    return shown


def is_finite_number(value: Any) -> bool:
    """True for an int or float that is neither NaN nor infinite (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


class Finding(BaseModel):
    """A detector's verdict on one window: what it saw, how strongly, and why it matters."""

    kind: FindingKind
    detector: str
    features: list[str] = Field(default_factory=list)
    statistic: str
    score: float
    threshold: float
    p_value: float | None = None
    window: int | None = None
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)

    @field_validator("score", "threshold")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("a finding's score and threshold must be finite numbers")
        return value
