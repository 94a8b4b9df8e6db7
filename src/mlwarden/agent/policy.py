"""The agent's policy: what is persistent, how severe, which action, and the limits on acting.

A policy file has ``defaults`` that hold for every model and an optional ``models`` section whose
entries override the defaults key by key (nested mappings merge, everything else replaces).
Every policy is merged over the bundled ``policies/default.yaml``, the one place the default
values are written, the decision table included: a file names only what it changes.

Every key is typed and bounded, the ``detection`` section's too (``DetectionSettings``), and
the whole file, each model's overrides merged, is validated when it is loaded: an error names
the line of the offending key, the key's path, the value found and what was expected. The YAML
is composed into nodes (which keep their ``start_mark``) before it is validated; each pydantic
error location is walked back to its node.

A key the policy does not know is an error, not a warning: a misspelt key (``min_confidnce``)
would otherwise leave the default in force while its author believes it changed, and the one
who reads a warning in a server's log is rarely the one who wrote the file. Refusing costs
nothing on a running server, which keeps the policy it had (``agent.background``), and the
error names the nearest known key.

>>> text = "defaults:\\n  mode: advisory\\nmodels:\\n  fraud:\\n    mode: autonomous\\n"
>>> policy = load_policy_text(text)
>>> policy.for_model("fraud").mode, policy.for_model("other").mode
('autonomous', 'advisory')
"""

from __future__ import annotations

import copy
import difflib
import os
import tempfile
import threading
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from mlwarden.domain import ActionKind, FindingKind, Severity
from mlwarden.errors import Conflict, InvalidInput
from mlwarden.monitor.config import MonitorConfig
from mlwarden.settings import Settings


class Diagnosis(StrEnum):
    """The rows of the decision table: what kind of failure the findings add up to."""

    NOISE = "noise"
    DATA_QUALITY = "data_quality"
    REGRESSION_AFTER_DEPLOY = "regression_after_deploy"
    CONCEPT_DRIFT = "concept_drift"
    COVARIATE_DRIFT_PERFORMANCE_DROP = "covariate_drift_performance_drop"
    COVARIATE_DRIFT_STABLE = "covariate_drift_stable"
    LATENCY_OR_ERRORS = "latency_or_errors"
    COLLAPSED_PREDICTIONS = "collapsed_predictions"
    LATE_DATA = "late_data"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersistenceRule(_Strict):
    """When a finding stops being a noisy window and becomes a persistent failure.

    ``k_of_n``: at least ``k`` of the last ``n`` windows carry a finding of that kind.
    ``sprt``: Wald's sequential probability ratio test on the flagged/unflagged sequence, with
    ``p0`` the false-alarm rate of a healthy model and ``p1`` the flag rate of a broken one.
    """

    method: Literal["k_of_n", "sprt"] = "k_of_n"
    k: int = Field(default=3, ge=1)
    n: int = Field(default=5, ge=1)
    p0: float = Field(default=0.05, gt=0.0, lt=1.0)
    p1: float = Field(default=0.6, gt=0.0, lt=1.0)
    alpha: float = Field(default=0.01, gt=0.0, lt=0.5)
    beta: float = Field(default=0.05, gt=0.0, lt=0.5)

    @model_validator(mode="after")
    def _consistent(self) -> PersistenceRule:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) cannot be larger than n ({self.n})")
        if self.p1 <= self.p0:
            raise ValueError(f"p1 ({self.p1}) must be larger than p0 ({self.p0})")
        return self


class KindThreshold(_Strict):
    """A finding only counts when ``score / threshold`` reaches ``min_ratio``."""

    min_ratio: float = Field(default=1.0, ge=0.0)


class SeverityLevel(_Strict):
    """Any one condition met raises the severity to this level."""

    effect_ratio: float | None = Field(default=None, gt=0.0)
    traffic_share: float | None = Field(default=None, ge=0.0, le=1.0)
    performance_drop: float | None = Field(default=None, ge=0.0)


class SeverityRules(_Strict):
    medium: SeverityLevel
    high: SeverityLevel
    critical: SeverityLevel


class RetrainSettings(_Strict):
    min_labels: int = Field(ge=10)
    holdout_fraction: float = Field(gt=0.0, lt=0.9)
    include_reference: bool
    min_improvement: float = Field(ge=0.0)
    rollout: Literal["canary", "shadow", "direct"]
    canary_weight: float = Field(gt=0.0, lt=1.0)
    # promotion waits for this many labelled requests (shadow without labels: requests); a
    # candidate this much worse than the champion on them is removed, and one is promoted only
    # when the 95 % interval of its gain on the same requests lies above canary_min_gain
    # (accuracy points; for regression a share of the champion's error) (agent.canary)
    canary_min_labels: int = Field(ge=10)
    canary_tolerance: float = Field(ge=0.0)
    canary_min_gain: float = Field(ge=0.0)
    recent_records: int = Field(ge=10)
    # before a drop on moving inputs is retrained, the retrain this many windows ago (not
    # before the drop began) is judged on the records since (agent.hindsight)
    hindsight_windows: int = Field(ge=1)
    # a concept drift's retrain on the records after its change alone: "ask" at once, or only
    # once the candidate fitted on the first window after the change has served every window
    # since better than the champion ("lasting"; agent.hindsight, docs/benchmarks.md "A
    # concept-drift retrain judged on evidence": it spares the seasonal drift's retrains and
    # delays the real flip's by three windows)
    concept_hindsight: Literal["ask", "lasting"] = "ask"


# the formats of an alert's body (agent.remedies.alert.format_alert)
AlertFormat = Literal["mlwarden", "alertmanager", "pagerduty", "slack"]


class AlertSettings(_Strict):
    webhook_url: str | None
    format: AlertFormat
    retries: int = Field(ge=0, le=10)
    backoff_s: float = Field(ge=0.0)
    timeout_s: float = Field(gt=0.0)


class VerifySettings(_Strict):
    windows: int = Field(ge=1)
    # a pipeline remedy (fallback) is released after this many clean windows, before the
    # incident is resolved after ``windows`` of them
    release_after_windows: int = Field(ge=1)
    tolerance: float = Field(ge=0.0)
    max_wait_windows: int = Field(ge=1)


class DriftSettings(_Strict):
    """Drift that persists without harm: after ``accept_after_windows`` windows of a drift
    incident with no performance incident beside it, or of a drop on moving inputs with no
    remedy taken or asked, it is accepted (None: never; see ``agent.acceptance``)."""

    accept_after_windows: int | None = Field(ge=1)
    # on an acceptance by the agent, the monitor compares with the records of the newest
    # ``persistence.n`` windows of the incident instead of the registered reference, when they
    # had no quality or service finding (undone by reopening the incident)
    rebaseline_on_accept: bool = False


class EvidenceSettings(_Strict):
    """Remedies chosen on evidence (``agent.evidence``): before acting, each candidate is scored
    on the labelled records of the incident's windows, beside keeping the champion.

    A remedy whose score is worse than doing nothing by more than ``tolerance`` (accuracy, or
    relative RMSE for regression) is not taken. ``min_labels``: fewer labelled records than this
    and the evidence is too thin to overrule the policy's table. ``refusal_better_than_wrong``:
    a refused request (a disabled model) costs less than a wrong answer; off, a refusal counts
    as a wrong answer, so disabling a model never looks better than serving.
    ``standard_errors``: the remedy must stay within the tolerance once this many standard
    errors of its difference with doing nothing (record by record) are taken off its score; 0
    judges on the scores alone."""

    tolerance: float = Field(ge=0.0)
    min_labels: int = Field(ge=10)
    refusal_better_than_wrong: bool
    standard_errors: float = Field(ge=0.0, le=10.0)


# the monitor's own values: a ``detection`` section names only what it changes, the rest keep
# ``MonitorConfig``'s (written once, there)
_MONITOR = MonitorConfig()


class SignalRuleSettings(_Strict):
    """A bound on one signal (``detect.anomaly.SignalRule``): a window outside it is an anomaly."""

    signal: str = Field(min_length=1)
    minimum: float | None = None
    maximum: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SignalRuleSettings:
        if self.minimum is None and self.maximum is None:
            raise ValueError(f"the rule on {self.signal!r} needs a minimum, a maximum or both")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum ({self.minimum}) is larger than maximum ({self.maximum})")
        return self


class DetectionSettings(_Strict):
    """The monitor's thresholds (``monitor.config.MonitorConfig``), typed and bounded: a
    probability lies in (0, 1), a distance, ratio or count above zero, a tolerance at least
    zero, a method one of those the monitor has. A key not named keeps ``MonitorConfig``'s value
    (``_MONITOR``); ``tests/agent/test_policy_validation.py`` holds both classes to the same
    fields, so a new monitor setting cannot be left untyped here."""

    drift_alpha: float = Field(default=_MONITOR.drift_alpha, gt=0.0, lt=1.0)
    drift_wasserstein: float = Field(default=_MONITOR.drift_wasserstein, gt=0.0)
    drift_psi: float = Field(default=_MONITOR.drift_psi, gt=0.0)
    drift_jensen_shannon: float = Field(default=_MONITOR.drift_jensen_shannon, gt=0.0, le=1.0)
    multivariate: bool = _MONITOR.multivariate
    multivariate_auc: float = Field(default=_MONITOR.multivariate_auc, ge=0.5, le=1.0)
    multivariate_screen: float | None = Field(default=_MONITOR.multivariate_screen, gt=0.0, le=1.0)
    prediction_alpha: float = Field(default=_MONITOR.prediction_alpha, gt=0.0, lt=1.0)
    collapse_max_share: float = Field(default=_MONITOR.collapse_max_share, gt=0.0, le=1.0)
    collapse_std_ratio: float = Field(default=_MONITOR.collapse_std_ratio, ge=0.0)
    # per metric; a metric not named keeps its default tolerance
    performance_tolerance: dict[str, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=lambda: dict(_MONITOR.performance_tolerance)
    )
    min_labels: int = Field(default=_MONITOR.min_labels, ge=1)
    streaming: Literal["adwin", "page_hinkley"] | None = _MONITOR.streaming  # type: ignore[assignment]
    streaming_min_increase: float = Field(default=_MONITOR.streaming_min_increase, ge=0.0)
    calibration: Literal["isotonic", "platt"] = _MONITOR.calibration  # type: ignore[assignment]
    estimated_sigmas: float = Field(default=_MONITOR.estimated_sigmas, gt=0.0)
    change_threshold: float | None = Field(default=_MONITOR.change_threshold, gt=0.0)
    latency_slo_ms: float | None = Field(default=_MONITOR.latency_slo_ms, gt=0.0)
    latency_ratio: float = Field(default=_MONITOR.latency_ratio, gt=0.0)
    latency_median_ratio: float = Field(default=_MONITOR.latency_median_ratio, ge=0.0)
    error_min_increase: float = Field(default=_MONITOR.error_min_increase, ge=0.0)
    throughput_ratio: float = Field(default=_MONITOR.throughput_ratio, gt=0.0)
    max_delay_s: float | None = Field(default=_MONITOR.max_delay_s, gt=0.0)
    anomaly: bool = _MONITOR.anomaly
    anomaly_min_history: int = Field(default=_MONITOR.anomaly_min_history, ge=1)
    rules: list[SignalRuleSettings] = Field(default_factory=list)
    keep_windows: int = Field(default=_MONITOR.keep_windows, ge=1)
    late_label_windows: int = Field(default=_MONITOR.late_label_windows, ge=0)
    confidence: float = Field(default=_MONITOR.confidence, gt=0.0, lt=1.0)
    bootstrap_resamples: int = Field(default=_MONITOR.bootstrap_resamples, ge=1)

    def monitor_config(self) -> MonitorConfig:
        """The monitor's settings: the keys this section set over ``MonitorConfig``'s values."""
        return MonitorConfig.from_mapping(self.model_dump(exclude_unset=True))[0]


class ApprovalSettings(_Strict):
    """Which actions wait for an operator in autonomous mode (advisory mode: every remedy)."""

    always: list[ActionKind]
    from_severity: Severity
    from_severity_actions: list[ActionKind]
    expiry_minutes: float = Field(gt=0)


class ModelPolicy(_Strict):
    """The policy for one model, after the model's overrides are merged over the defaults.

    No key has a default value here: every policy is merged over the bundled
    ``policies/default.yaml`` first (``Policy``), which is the one place the defaults are
    written, the decision table (``actions``) included.
    """

    mode: Literal["advisory", "autonomous"]
    persistence: PersistenceRule
    thresholds: dict[FindingKind, KindThreshold]
    severity: SeverityRules
    actions: dict[Diagnosis, list[ActionKind]]
    min_confidence: float = Field(ge=0.0, le=1.0)
    approval: ApprovalSettings
    cooldown_minutes: dict[ActionKind, Annotated[float, Field(ge=0.0)]]
    default_cooldown_minutes: float = Field(ge=0.0)
    max_actions_per_day: int = Field(ge=0)
    deploy_window_minutes: float = Field(ge=0.0)
    # ... and only when the failure began within this many windows of the version going live
    deploy_window_windows: int = Field(ge=0)
    retrain: RetrainSettings
    alert: AlertSettings
    verify: VerifySettings
    drift: DriftSettings
    evidence: EvidenceSettings
    disable_without_fallback: bool
    # the monitor's thresholds (``monitor.config.MonitorConfig`` fields; the ones not named keep
    # their values there); read at each window, so a reloaded policy changes the next one
    detection: DetectionSettings

    @model_validator(mode="after")
    def _every_diagnosis_has_a_row(self) -> ModelPolicy:
        missing = [d.value for d in Diagnosis if d not in self.actions]
        if missing:
            raise ValueError(f"the decision table has no row for {', '.join(missing)}")
        return self

    def actions_for(self, diagnosis: Diagnosis) -> list[ActionKind]:
        return list(self.actions[diagnosis])

    def min_ratio(self, kind: FindingKind) -> float:
        return self.thresholds.get(kind, KindThreshold()).min_ratio

    def cooldown(self, action: ActionKind) -> float:
        return self.cooldown_minutes.get(action, self.default_cooldown_minutes)

    def monitor_config(self) -> MonitorConfig:
        """The monitor's settings: ``detection`` over ``MonitorConfig``'s values."""
        return self.detection.monitor_config()


class PolicyFile(_Strict):
    version: Literal[1] = 1
    defaults: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)


def bundled_defaults() -> dict[str, Any]:
    """The ``defaults`` of the bundled ``policies/default.yaml``: every key of a policy."""
    return copy.deepcopy(_bundled_defaults())


@cache
def _bundled_defaults() -> dict[str, Any]:
    text = resources.files("mlwarden.agent").joinpath("policies/default.yaml").read_text("utf-8")
    return dict(yaml.safe_load(text)["defaults"])


class Policy:
    """A validated policy: ``for_model(name)`` gives the merged ``ModelPolicy``.

    ``raw`` names only what it changes: its ``defaults`` are merged key by key over the bundled
    ones (nested mappings merge, everything else replaces), and each model's overrides over
    the result. A policy that sets one cooldown keeps the bundled cooldowns of the other actions.
    """

    def __init__(self, raw: dict[str, Any], source: str = "<policy>") -> None:
        self.raw = raw
        self.source = source
        parsed = PolicyFile.model_validate(raw)
        defaults = _deep_merge(_bundled_defaults(), parsed.defaults)
        self.defaults = ModelPolicy.model_validate(defaults)
        self._models = {
            name: ModelPolicy.model_validate(_deep_merge(defaults, override))
            for name, override in parsed.models.items()
        }

    def for_model(self, name: str) -> ModelPolicy:
        return self._models.get(name, self.defaults)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class PolicyProblem(BaseModel):
    """One error of a policy file, with the line (1-based) it sits on when known."""

    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line else []
        return ": ".join([*where, *([self.path] if self.path else []), self.message])


class PolicyError(InvalidInput):
    """A policy file that cannot be used; ``problems`` lists each error with its line."""

    def __init__(self, source: str, problems: list[PolicyProblem]) -> None:
        text = "\n".join(f"{source}: {p}" for p in problems)
        super().__init__(f"invalid policy\n{text}", problems=[p.model_dump() for p in problems])
        self.problems = problems


def _node_at(node: yaml.Node | None, path: tuple[Any, ...]) -> yaml.Node | None:
    """The node that ``path`` names: a mapping key's own node, so the line is the key's line.

    When part of the path does not exist (a missing required key), the deepest existing node is
    returned, so the error points at the mapping that lacks the key.
    """
    located = node
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    located, node = key_node, value_node
                    break
            else:
                return located
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            located = node = node.value[part]
        else:
            return located
    return located


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the mapping at ``loc`` (below ``model``) may hold; [] when it is no model's."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        else:  # a list's item, a mapping's value or an optional's type
            members = [a for a in get_args(current) if a is not type(None)]
            if not members:
                return []
            current = members[-1]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _message(item: Any, model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """What is wrong, with the value found (a scalar) and, for an unknown key, the nearest
    known one."""
    if item["type"] == "extra_forbidden":
        known = _keys_at(model, loc[:-1])
        near = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; the keys here: {', '.join(known)}"
        return f"unknown key {str(loc[-1])!r}{hint if known else ''}"
    message = str(item["msg"]).removeprefix("Value error, ")
    found = item.get("input")
    if item["type"] != "missing" and not isinstance(found, dict | list):
        message = f"{message}, not {found!r}"
    return message


def _problems_from(
    error: ValidationError,
    root: yaml.Node | None,
    prefix: tuple[Any, ...],
    model: type[BaseModel] = BaseModel,
) -> list[PolicyProblem]:
    problems = []
    for item in error.errors():
        # pydantic adds the validator's function name or a union member to the location; drop them
        loc = tuple(
            p
            for p in item["loc"]
            if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
        )
        path = prefix + loc
        node = _node_at(root, path)
        line = node.start_mark.line + 1 if node is not None else None
        problem = PolicyProblem(
            line=line, path=".".join(str(p) for p in path), message=_message(item, model, loc)
        )
        if problem not in problems:  # a union reports its failure once per member
            problems.append(problem)
    return problems


def _has_path(data: Any, parts: list[str]) -> bool:
    for part in parts:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False
    return True


def load_policy_text(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate a policy from YAML text, merged over the bundled defaults; raise
    ``PolicyError`` with the text's line numbers."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(
            source, [PolicyProblem(line=line, path="", message=f"not valid YAML: {problem}")]
        ) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PolicyError(
            source,
            [
                PolicyProblem(
                    line=1,
                    path="",
                    message="a policy must be a mapping with 'defaults' and 'models'",
                )
            ],
        )
    try:
        parsed = PolicyFile.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(source, _problems_from(exc, root, (), PolicyFile)) from exc
    problems: list[PolicyProblem] = []
    defaults = _deep_merge(_bundled_defaults(), parsed.defaults)
    try:
        ModelPolicy.model_validate(defaults)
    except ValidationError as exc:
        problems += _problems_from(exc, root, ("defaults",), ModelPolicy)
    for name, override in parsed.models.items():
        try:
            ModelPolicy.model_validate(_deep_merge(defaults, override))
        except ValidationError as exc:
            for problem in _problems_from(exc, root, ("models", name), ModelPolicy):
                # an error inherited from the defaults is already reported at the defaults' line
                inherited = not _has_path(override, problem.path.split(".")[2:])
                if not (inherited and any(p.path.startswith("defaults") for p in problems)):
                    problems.append(problem)
    if problems:
        raise PolicyError(source, problems)
    return Policy(raw, source)


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy file, merged over the bundled default policy (the bundled one alone when
    ``path`` is None). Problems are reported with the file's own line numbers."""
    if path is None:
        return Policy({}, "default.yaml")
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"policy file {file} does not exist")
    return load_policy_text(file.read_text("utf-8"), str(file))


def configured_policy(settings: Settings | None = None) -> Policy:
    """The policy file of the settings (``MLWARDEN_AGENT_POLICY``), or the bundled default."""
    settings = settings or Settings()
    return load_policy(settings.agent_policy)


def validate_policy_file(path: str | Path) -> list[PolicyProblem]:
    """Every problem of a policy file (empty when valid); used by ``mlwarden policy validate``."""
    try:
        load_policy(path)
    except PolicyError as exc:
        return exc.problems
    return []


def model_override(policy: Policy, name: str) -> dict[str, Any]:
    """What ``policy``'s file sets for model ``name`` over its defaults ({} when nothing)."""
    return copy.deepcopy(dict((policy.raw.get("models") or {}).get(name) or {}))


# one writer of a policy file at a time in this process (the API's requests run in threads)
_WRITING = threading.Lock()


def write_model_override(path: Path, name: str, override: dict[str, Any]) -> tuple[Policy, Policy]:
    """Set model ``name``'s overrides in the policy file ``path`` ({} removes them): the file as
    it is, with ``models.<name>`` replaced, must validate as a whole (``PolicyError`` naming
    ``models.<name>.<key>`` otherwise, and the file is left alone); it is then replaced in one
    step (a temporary file renamed over it), so an agent reading it sees the old or the new
    file, never half of one. Returns the policies before and after.

    The file is written back as YAML from its parsed content: its comments and key order
    beyond the first level do not survive; a file kept in version control is better changed
    there. A file that does not validate now is not written over (fix it first)."""
    with _WRITING:
        try:
            before = load_policy(path) if path.is_file() else Policy({}, str(path))
        except PolicyError as exc:
            raise Conflict(
                f"the policy file does not validate; fix it before changing an override\n"
                f"{exc.message}",
                problems=[p.model_dump() for p in exc.problems],
            ) from exc
        raw = copy.deepcopy(before.raw)
        models = dict(raw.get("models") or {})
        if override:
            models[name] = copy.deepcopy(override)
        else:
            models.pop(name, None)
        raw["models"] = models
        text = yaml.safe_dump(raw, sort_keys=False, default_flow_style=False)
        try:
            after = load_policy_text(text, str(path))
        except PolicyError as exc:
            # the lines are those of the text made here, which nobody sees: name the keys only
            problems = [p.model_copy(update={"line": None}) for p in exc.problems]
            raise PolicyError(f"the override of {name}", problems) from exc
        handle, temporary = tempfile.mkstemp(prefix=".policy-", suffix=".yaml", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return before, after
