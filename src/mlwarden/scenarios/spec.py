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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlwarden.domain import ActionKind, FindingKind, Task
from mlwarden.errors import InvalidInput, NotFound

FaultKind = Literal[
    "covariate_shift",
    "null_burst",
    "unit_change",
    "schema_break",
    "category_new",
    "concept_change",
    "label_shift",
    "latency",
    "errors",
    "bad_deploy",
    "prediction_freeze",
    "arrival_delay",
    "traffic_surge",
]

# Faults that change the rows themselves; the others change how the model is served or when
# records arrive.
DATA_FAULTS = {
    "covariate_shift",
    "null_burst",
    "unit_change",
    "schema_break",
    "category_new",
    "concept_change",
    "label_shift",
}


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

    @model_validator(mode="after")
    def _parameters(self) -> Fault:
        needs: dict[str, list[str]] = {
            "covariate_shift": ["feature"],
            "null_burst": ["feature", "rate"],
            "unit_change": ["feature", "factor"],
            "schema_break": ["feature", "mode"],
            "category_new": ["feature", "value", "rate"],
            "label_shift": ["positive_share"],
            "latency": ["add_ms"],
            "errors": ["rate"],
            "arrival_delay": ["delay_s"],
            "traffic_surge": ["multiplier"],
        }
        missing = [name for name in needs.get(self.kind, []) if getattr(self, name) is None]
        if missing:
            raise ValueError(f"fault {self.kind!r} needs: {', '.join(missing)}")
        if self.kind == "covariate_shift" and self.shift is None and self.scale is None:
            raise ValueError("fault 'covariate_shift' needs shift (std units) or scale (factor)")
        if self.kind == "schema_break" and self.mode == "rename" and not self.new_name:
            raise ValueError("schema_break with mode 'rename' needs new_name")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"fault end ({self.end}) must be after start ({self.start})")
        return self

    def active(self, position: int) -> bool:
        return position >= self.start and (self.end is None or position < self.end)


class ExpectedFinding(_Strict):
    kind: FindingKind
    features: list[str] = Field(default_factory=list)
    within: int = Field(default=2, ge=0, description="windows after the fault starts")


class Expectation(_Strict):
    """What a correct system does; used for scoring and for the exit code of `simulate`."""

    findings: list[ExpectedFinding] = Field(default_factory=list)
    actions: list[ActionKind] = Field(default_factory=list)
    playbooks: list[str] = Field(
        default_factory=list,
        description="playbook ids, each the best match of at least one incident's diagnosis",
    )
    max_actions: int | None = None
    max_false_alarm_windows: int | None = None
    recovery: bool = False


class Scenario(_Strict):
    name: str
    description: str = ""
    dataset: str
    target: str | None = None
    task: Task | None = None
    time_column: str | None = None
    drop_columns: list[str] = Field(default_factory=list)
    shuffle: bool = False
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


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path, with clear errors."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.exists():
            raise NotFound(f"scenario file {str(path)!r} does not exist")
        text = path.read_text()
        origin = str(path)
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
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'scenario'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidInput(f"{origin}: {problems}") from None
