"""Scenario files: a real dataset, a model recipe, a stream and the faults injected into it.

A scenario is YAML (documented in docs/scenarios.md). Positions (`start`, `end`, `label_delay`)
count records from the start of the stream; `window` is the number of records per window.

>>> scenario = load_scenario("elec_null_burst")
>>> scenario.dataset, scenario.faults[0].kind
('electricity', 'null_burst')
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlwarden.datasets import DATASETS
from mlwarden.domain import ActionKind, FindingKind, Severity, Task
from mlwarden.errors import InvalidInput, NotFound
from mlwarden.scenarios.faults.registry import fault_class

# a registered fault kind (``scenarios/faults/``: one module per kind)
FaultKind = str

# file types a scenario's ``dataset`` may name (data.load_frame reads them)
DATA_SUFFIXES = {".csv", ".parquet"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelRecipe(_Strict):
    """A scikit-learn estimator by its short name, with parameters; preprocessing is automatic."""

    algorithm: str = "gradient_boosting"
    params: dict[str, Any] = Field(default_factory=dict)


class Fault(_Strict):
    """One injected failure, active on stream records [start, end)."""

    kind: FaultKind
    start: int = Field(ge=0)
    end: int | None = None
    feature: str | None = None
    # covariate_shift: shift (in reference std units) or scale (a factor)
    shift: float | None = None
    scale: float | None = None
    # null_burst / category_new / errors: share of records affected
    rate: float | None = Field(default=None, ge=0.0, le=1.0)
    # unit_change: factor
    factor: float | None = None
    # schema_break: drop | rename | retype
    mode: Literal["drop", "rename", "retype"] | None = None
    new_name: str | None = None
    # category_new
    value: str | None = None
    # concept_change: relabel where `feature` is above (below) its stream median or `threshold`,
    # or everywhere (all)
    region: Literal["above", "below", "all"] | None = None
    threshold: float | None = None
    # label_shift: the share of the positive class after resampling
    positive_share: float | None = Field(default=None, ge=0.0, le=1.0)
    # latency: milliseconds added (mean of an exponential when distribution is exponential)
    add_ms: float | None = None
    distribution: Literal["constant", "exponential"] = "constant"
    # prediction_freeze: the constant returned (defaults to the reference's majority class)
    constant: Any = None
    # arrival_delay: seconds records arrive late; traffic_surge: rate multiplier
    delay_s: float | None = None
    multiplier: float | None = None

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        return registered_kind(kind)

    @model_validator(mode="after")
    def _parameters(self) -> Fault:
        behaviour = fault_class(self.kind)
        missing = [name for name in behaviour.needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"fault {self.kind!r} needs: {', '.join(missing)}")
        problem = behaviour.check(self)
        if problem:
            raise ValueError(problem)
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"fault end ({self.end}) must be after start ({self.start})")
        return self

    def active(self, position: int) -> bool:
        return position >= self.start and (self.end is None or position < self.end)


def registered_kind(kind: str) -> str:
    """``kind`` when a fault class is registered for it; else a ValueError naming the kinds."""
    try:
        fault_class(kind)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None
    return kind


class ExpectedFinding(_Strict):
    kind: FindingKind
    features: list[str] = Field(default_factory=list)
    within: int = Field(default=2, ge=0, description="windows after the fault starts")


# How an action ended, as summary.json reports it.
Outcome = Literal["succeeded", "kept", "reverted", "pending", "rejected", "failed"]


class ExpectedAction(_Strict):
    """An action the agent must take: one of ``action`` (a kind, or a list meaning any of
    them), by ``within`` windows after the fault starts, ending with ``outcome`` when given."""

    action: ActionKind | list[ActionKind]
    within: int | None = Field(default=None, ge=0, description="windows after the fault starts")
    outcome: Outcome | None = None
    fault: FaultKind | None = Field(
        default=None, description="the fault whose start counts (default: the first fault)"
    )

    @field_validator("fault")
    @classmethod
    def _registered(cls, kind: str | None) -> str | None:
        return None if kind is None else registered_kind(kind)

    @property
    def kinds(self) -> list[ActionKind]:
        return self.action if isinstance(self.action, list) else [self.action]


class ExpectedIncidents(_Strict):
    """How many incidents the run opens and how severe they get."""

    count: int | None = Field(default=None, ge=0)
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    severity: Severity | None = Field(
        default=None, description="some incident reaches at least this severity"
    )
    max_severity: Severity | None = Field(
        default=None, description="no incident goes above this severity"
    )


class MetricBounds(_Strict):
    """Bounds on the metric served over the fault periods (accuracy, or RMSE for regression)."""

    min: float | None = None
    max: float | None = None


class ApproveAfter(_Strict):
    after: int = Field(ge=0, description="windows after the request")


# The operator stand-in: ``never`` leaves requests unanswered (they expire under the policy),
# ``reject`` refuses each at once, ``always`` approves each at once, ``{after: N}`` approves each
# N windows after it was asked for.
Approve = Literal["always", "never", "reject"] | ApproveAfter


class Expectation(_Strict):
    """What a correct system does; used for scoring and for the exit code of `simulate`."""

    findings: list[ExpectedFinding] = Field(default_factory=list)
    actions: list[ActionKind | ExpectedAction] = Field(default_factory=list)
    never: list[ActionKind] = Field(
        default_factory=list, description="actions the agent must neither take nor ask for"
    )
    never_during_faults: list[ActionKind] = Field(
        default_factory=list,
        description="actions the agent must neither take nor ask for in the fault periods "
        "(on a drifting stream, a retrain before the fault may be right)",
    )
    playbooks: list[str] = Field(
        default_factory=list,
        description="playbook ids, each the best match of at least one incident's diagnosis",
    )
    incidents: ExpectedIncidents | None = None
    metric: MetricBounds | None = None
    max_actions: int | None = None
    max_false_alarm_windows: int | None = None
    recovery: bool = False
    harm: bool = Field(default=True, description="mlwarden must serve no worse than doing nothing")
    helps: bool = Field(
        default=False,
        description="mlwarden must serve better than doing nothing over the fault periods, by "
        "more than the tolerance (for faults some remedy is known to mend)",
    )
    tolerance: float | None = Field(
        default=None,
        ge=0.0,
        description="how much worse than doing nothing still passes `harm`: accuracy points, "
        "or a share of doing nothing's RMSE (default 0.005 and 0.01)",
    )


# the order a scenario's rows are streamed in: the dataset's own (time), or shuffled
Order = Literal["time", "shuffled"]


class Scenario(_Strict):
    name: str
    description: str = ""
    dataset: str
    target: str | None = None
    task: Task | None = None
    time_column: str | None = None
    drop_columns: list[str] = Field(default_factory=list)
    shuffle: bool = False
    order: Order | None = Field(
        default=None,
        description="the one order the scenario holds for, when its data's own order is its "
        "premise (real drift and no injected fault: shuffled, there is nothing to find); "
        "`shuffle` follows it, and `--order` cannot change it",
    )
    model: ModelRecipe = Field(default_factory=ModelRecipe)
    fallback: ModelRecipe | None = Field(
        default_factory=lambda: ModelRecipe(algorithm="logistic_regression")
    )
    reference: tuple[int, int]
    stream: tuple[int, int]
    window: int = Field(default=1000, ge=10)
    label_delay: int = Field(default=0, ge=0, description="records before a label arrives")
    rate: float = Field(default=200.0, gt=0, description="records per simulated second")
    faults: list[Fault] = Field(default_factory=list)
    expect: Expectation | None = None
    policy: str | dict[str, Any] | None = None
    mode: Literal["advisory", "autonomous"] = "autonomous"
    approve: Approve = "never"

    @model_validator(mode="after")
    def _fixed_order(self) -> Scenario:
        if self.order is None:
            return self
        shuffled = self.order == "shuffled"
        if "shuffle" in self.model_fields_set and self.shuffle != shuffled:
            raise ValueError(
                f"shuffle: {str(self.shuffle).lower()} contradicts order: {self.order}"
            )
        self.shuffle = shuffled
        return self

    @model_validator(mode="after")
    def _ranges(self) -> Scenario:
        for label, (start, end) in (("reference", self.reference), ("stream", self.stream)):
            if start < 0 or end <= start:
                raise ValueError(f"{label} must be [start, end) with 0 <= start < end")
        length = self.stream[1] - self.stream[0]
        if length < self.window:
            raise ValueError(f"the stream ({length} records) is shorter than one window")
        for fault in self.faults:
            if fault.start >= length:
                raise ValueError(f"fault {fault.kind!r} starts after the stream ends ({length})")
        return self

    @property
    def stream_length(self) -> int:
        return self.stream[1] - self.stream[0]

    @property
    def windows(self) -> int:
        return self.stream_length // self.window


def builtin_names() -> list[str]:
    """Names of the scenarios shipped with mlwarden."""
    folder = resources.files("mlwarden.scenarios") / "library"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str | Path, *, order: Order | None = None) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path, with clear errors.

    A file's relative data paths (a CSV/Parquet ``dataset``, a ``policy`` file) are read from
    the file's folder. ``order`` replaces the scenario's own: ``time`` streams the rows as the
    dataset holds them, ``shuffled`` shuffles them (a stationary stream); asking a scenario
    that fixes its order (``order:`` in the file) for the other one is an InvalidInput."""
    path = Path(name_or_path)
    folder: Path | None = None
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.exists():
            raise NotFound(f"scenario file {str(path)!r} does not exist")
        text = path.read_text()
        origin = str(path)
        folder = path.resolve().parent
    else:
        names = builtin_names()
        if str(name_or_path) not in names:
            raise NotFound(
                f"unknown scenario {str(name_or_path)!r}; built-in scenarios: {', '.join(names)}"
            )
        text = (
            resources.files("mlwarden.scenarios") / "library" / f"{name_or_path}.yaml"
        ).read_text()
        origin = f"built-in scenario {name_or_path}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{origin}: a scenario is a YAML mapping")
    if folder is not None:
        data = _relative_to(data, folder)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'scenario'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidInput(f"{origin}: {problems}") from None
    return scenario if order is None else in_order(scenario, order)


def in_order(scenario: Scenario, order: Order) -> Scenario:
    """The scenario streamed in time order (the dataset's own) or shuffled; an InvalidInput
    when the scenario fixes the other order (``Scenario.order``)."""
    if scenario.order is not None and order != scenario.order:
        raise InvalidInput(
            f"scenario {scenario.name} fixes {scenario.order} order (its data's own order is "
            f"its premise): it cannot run {order}"
        )
    return scenario.model_copy(update={"shuffle": order == "shuffled"})


def _relative_to(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Data paths of a scenario file, resolved against the file's folder."""
    out = dict(data)
    dataset = out.get("dataset")
    if (
        isinstance(dataset, str)
        and dataset not in DATASETS
        and Path(dataset).suffix in DATA_SUFFIXES
        and not Path(dataset).is_absolute()
    ):
        out["dataset"] = str(folder / dataset)
    policy = out.get("policy")
    if isinstance(policy, str) and not Path(policy).is_absolute():
        out["policy"] = str(folder / policy)
    return out
