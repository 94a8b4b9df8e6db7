"""Predictors: the one interface the gateway calls for a version, local or remote.

- :class:`LocalPredictor` wraps a scikit-learn estimator (loaded from its skops artifact). It
  builds a NumPy array in the model's column order when every feature is numeric (pandas per
  request costs milliseconds), and a DataFrame only when the model needs strings.
- :class:`RemotePredictor` calls a model served elsewhere over HTTP: generic JSON
  (``{"instances": [...]}`` answered by the common shapes: ``{"predictions": [...]}`` as
  MLflow, KServe v1 and TF Serving answer, a bare list as TorchServe and BentoML do, a single
  object for a single instance, Hugging Face ``[{"label", "score"}]``, or any other shape
  through a :class:`ResponseMapping`) or the KServe / Open Inference Protocol v2
  (``POST {url}/v2/models/{name}/infer``).

>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> from mlwarden.domain import FeatureSpec, ModelSpec
>>> spec = ModelSpec(name="m", task="classification",
...                  features=[FeatureSpec(name="a"), FeatureSpec(name="b")])
>>> model = LogisticRegression().fit(np.array([[0, 0], [1, 1], [0, 1], [1, 0]]), [0, 1, 0, 1])
>>> [p.prediction for p in LocalPredictor(model, spec).predict([{"a": 1, "b": 0.5}])]
[1]
"""

from __future__ import annotations

import asyncio
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import sklearn

from mlwarden.domain import FeatureType, ModelSpec, Task, mask_url
from mlwarden.errors import InvalidInput, MlwardenError

__all__ = [
    "RESPONSE_HINT",
    "LocalPredictor",
    "Prediction",
    "PredictionError",
    "Predictor",
    "RemotePredictor",
    "ResponseMapping",
    "to_native",
]


class PredictionError(MlwardenError):
    """A version failed to answer (it raised, returned garbage, or its endpoint failed)."""

    status_code = 502


def _threadlocal_config() -> Callable[[], dict[str, Any]] | None:
    """scikit-learn's getter of this thread's mutable configuration, when it has the one that
    ``get_config`` reads (checked once); None otherwise."""
    try:
        from sklearn._config import _get_threadlocal_config as getter
    except ImportError:
        return None
    try:
        config = getter()
        before = config["assume_finite"]
        config["assume_finite"] = not before
        seen = sklearn.get_config()["assume_finite"]
        config["assume_finite"] = before
    except (KeyError, TypeError):
        return None
    return getter if seen is not before else None


_CONFIG = _threadlocal_config()


class _AssumeFinite:
    """``sklearn.config_context(assume_finite=value)`` for one call: the same switch of this
    thread's configuration, without ``config_context``'s copies of the whole configuration
    and its generator (about 5 µs of a prediction's few hundred on the gateway's event loop).
    Falls back to ``config_context`` where scikit-learn's internals differ."""

    __slots__ = ("_config", "_context", "_previous", "_value")

    def __init__(self, value: bool) -> None:
        self._value = value

    def __enter__(self) -> None:
        if _CONFIG is None:
            self._context = sklearn.config_context(assume_finite=self._value)
            self._context.__enter__()
            return
        self._config = config = _CONFIG()
        self._previous = config["assume_finite"]
        config["assume_finite"] = self._value

    def __exit__(self, *exc: object) -> None:
        if _CONFIG is None:
            self._context.__exit__(*exc)
        else:
            self._config["assume_finite"] = self._previous


@dataclass(slots=True)
class Prediction:
    """What a version said about one instance."""

    prediction: Any
    probabilities: dict[str, float] | None = None
    score: float | None = None

    @property
    def scores(self) -> dict[str, float] | float | None:
        """What a record stores as its scores: class probabilities, or the regression score."""
        return self.probabilities if self.probabilities is not None else self.score


class Predictor(Protocol):
    """Anything that turns validated instances into predictions, one per instance."""

    is_remote: bool

    def predict(self, instances: Sequence[Mapping[str, Any]]) -> list[Prediction]: ...


def to_native(value: Any) -> Any:
    """A JSON-friendly Python value for a NumPy scalar or array (others pass through)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


_BOOL_TEXT = {"true": 1.0, "1": 1.0, "false": 0.0, "0": 0.0}


def _to_float(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        text = value.strip().lower()
        return _BOOL_TEXT[text] if text in _BOOL_TEXT else float(text)
    return float(value)


# the types NumPy turns into a float exactly as ``_to_float`` does (None as NaN)
_PLAIN_NUMBERS = frozenset({float, int, bool, type(None)})


def _float_column(values: list[Any]) -> np.ndarray:
    """``_to_float`` of every value, as one array: in one NumPy conversion when every value is
    a plain number or None (the usual validated request), one by one otherwise (text)."""
    if {type(v) for v in values} <= _PLAIN_NUMBERS:
        return np.array(values, dtype=float)
    return np.array([_to_float(v) for v in values], dtype=float)


def _to_category(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return np.nan
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _to_text(value: Any) -> str:
    # a null text reaches the model as no words: a text vectorizer fails on NaN or None, and
    # the record keeps the null for the monitor to count
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


_CONVERTERS: dict[FeatureType, Callable[[Any], Any]] = {
    FeatureType.CATEGORICAL: _to_category,
    FeatureType.TEXT: _to_text,
}

# The gateway orders the columns itself, so this warning about a name-less array says nothing.
_NAMES_WARNING = "X does not have valid feature names"


def _silence_feature_names_warning() -> None:
    # filterwarnings replaces an identical filter, so calling this per model adds nothing
    warnings.filterwarnings("ignore", message=_NAMES_WARNING, category=UserWarning)


class LocalPredictor:
    """A scikit-learn estimator or pipeline held in memory, called in-process.

    ``predict`` takes validated feature dicts and returns one :class:`Prediction` each: the
    class and its probabilities (``predict_proba``) for a classifier, the value and score for a
    regressor. The input layout (array or DataFrame, column order) is decided once, here.
    """

    is_remote = False

    def __init__(self, estimator: Any, spec: ModelSpec) -> None:
        if not hasattr(estimator, "predict"):
            raise InvalidInput(f"{type(estimator).__name__} has no predict method")
        self.estimator = estimator
        self.spec = spec
        types = {f.name: f.type for f in spec.features}
        fitted_names = getattr(estimator, "feature_names_in_", None)
        if fitted_names is not None:
            columns = [str(name) for name in fitted_names]
            unknown = [name for name in columns if name not in types]
            if unknown:
                raise InvalidInput(
                    f"the model was trained on columns {unknown} that the schema of "
                    f"{spec.name!r} does not declare",
                    columns=unknown,
                )
        else:
            columns = spec.feature_names
        self.columns = columns
        self._converters = [_CONVERTERS.get(types[name], _to_float) for name in columns]
        self._numeric_only = all(c is _to_float for c in self._converters)
        if self._numeric_only and fitted_names is not None:
            _silence_feature_names_warning()
        self._proba = spec.task is Task.CLASSIFICATION and hasattr(estimator, "predict_proba")
        classes = getattr(estimator, "classes_", None) if self._proba else None
        self._classes = [to_native(c) for c in classes] if classes is not None else None
        self._class_keys = [str(c) for c in self._classes] if self._classes else None

    @classmethod
    def from_artifact(cls, artifact: bytes, spec: ModelSpec) -> LocalPredictor:
        """Load a skops artifact (refusing untrusted types) and wrap it; a predictor only
        predicts, so the estimator is shared with every other of the same bytes."""
        from mlwarden.registry.artifacts import load_shared_model

        return cls(load_shared_model(artifact), spec)

    def _inputs(self, instances: Sequence[Mapping[str, Any]]) -> Any:
        if self._numeric_only:
            matrix = np.empty((len(instances), len(self.columns)), dtype=float)
            for j, name in enumerate(self.columns):
                matrix[:, j] = _float_column([row.get(name) for row in instances])
            return matrix
        import pandas as pd

        data: dict[str, Any] = {}
        for name, convert in zip(self.columns, self._converters, strict=True):
            values = [row.get(name) for row in instances]
            numeric = convert is _to_float
            data[name] = _float_column(values) if numeric else list(map(convert, values))
        return pd.DataFrame(data, columns=self.columns)

    def predict(self, instances: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        if not instances:
            return []
        try:
            inputs = self._inputs(instances)
        except (TypeError, ValueError, KeyError) as exc:
            raise InvalidInput(f"cannot build the model input: {exc}") from exc
        # rows without NaN need no finiteness scan inside scikit-learn (validation refused inf)
        finite = self._numeric_only and bool(np.isfinite(inputs).all())
        try:
            with _AssumeFinite(finite):
                if self._proba:
                    return self._classify(inputs)
                values = self.estimator.predict(inputs)
        except MlwardenError:
            raise
        except Exception as exc:
            raise PredictionError(
                f"{type(self.estimator).__name__} failed: {type(exc).__name__}: {exc}"
            ) from exc
        regression = self.spec.task is Task.REGRESSION
        out = []
        for value in values:
            native = to_native(value)
            numeric = isinstance(native, int | float) and not isinstance(native, bool)
            out.append(Prediction(native, None, float(native) if regression and numeric else None))
        return out

    def _classify(self, inputs: Any) -> list[Prediction]:
        proba = np.asarray(self.estimator.predict_proba(inputs), dtype=float)
        best = proba.argmax(axis=1)
        classes, keys = self._classes, self._class_keys
        assert classes is not None and keys is not None
        return [
            Prediction(classes[b], dict(zip(keys, row, strict=True)))
            for b, row in zip(best.tolist(), proba.tolist(), strict=True)
        ]


# ------------------------------------------------------------------------------------ remote

_V2_TYPES = {
    FeatureType.NUMERIC: "FP64",
    FeatureType.INTEGER: "INT64",
    FeatureType.BOOLEAN: "BOOL",
    FeatureType.CATEGORICAL: "BYTES",
    FeatureType.TEXT: "BYTES",
}


# the keys an answer's item names its parts with, first found wins
_PREDICTION_KEYS = ("prediction", "label", "class", "value")
_PROBABILITY_KEYS = ("probabilities", "scores")
_CONFIDENCE_KEYS = ("confidence", "probability", "score")
_ITEM_KEYS = _PREDICTION_KEYS + _PROBABILITY_KEYS + _CONFIDENCE_KEYS

RESPONSE_HINT = (
    "mlwarden reads a list of answers (one per instance) at the top level or under "
    "'predictions' (MLflow, KServe v1, TorchServe, BentoML), a single object for a single "
    "instance, and Hugging Face [{'label', 'score'}] lists; each answer a value, a list of "
    "class probabilities, or an object with 'prediction'/'label'/'class'/'value', "
    "'probabilities'/'scores' and 'confidence'/'probability'/'score'. Otherwise set the "
    "response field mapping: 'predictions' (the dotted path to the answers), 'prediction', "
    "'confidence', 'probabilities' (keys of an answer), e.g. mlwarden investigate --field "
    "predictions=data.results --field prediction=cls --field confidence=p; for KServe / Open "
    "Inference Protocol v2 endpoints use protocol 'v2' (--protocol v2)"
)


@dataclass(frozen=True)
class ResponseMapping:
    """Where a remote endpoint's answer keeps what mlwarden reads, for shapes it does not know
    by itself: ``predictions`` is the dotted path from the body to the list of answers (or to
    the one answer of a single instance; digits index lists), ``prediction``, ``confidence``
    and ``probabilities`` are dotted paths inside each answer.

    >>> ResponseMapping.of({"predictions": "data.out", "prediction": "cls"}).prediction
    'cls'
    """

    predictions: str | None = None
    prediction: str | None = None
    confidence: str | None = None
    probabilities: str | None = None

    @classmethod
    def of(cls, value: Any) -> ResponseMapping | None:
        """The mapping of an endpoint's ``response`` (None when it has none); ``InvalidInput``
        for an unknown field or a path that is not text."""
        if not value:
            return None
        if not isinstance(value, Mapping):
            raise InvalidInput("the response mapping must map fields to paths")
        known = [f for f in cls.__dataclass_fields__]
        unknown = [k for k in value if k not in known]
        if unknown:
            raise InvalidInput(
                f"unknown response field {unknown[0]!r}: the fields are {', '.join(known)}",
                field=str(unknown[0]),
            )
        for key, path in value.items():
            if not isinstance(path, str) or not path.strip():
                raise InvalidInput(f"the response field {key!r} needs a path, got {path!r}")
        return cls(**{k: v.strip() for k, v in value.items()})

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}


_MISSING = object()


def _at(value: Any, path: str) -> Any:
    """The value at a dotted ``path`` (digits index lists); ``_MISSING`` when absent."""
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _label_score(item: Any) -> bool:
    """A Hugging Face pipeline's class score: ``{"label": ..., "score": ...}``."""
    return isinstance(item, Mapping) and "label" in item and _number(item.get("score")) is not None


def _probabilities(value: Any) -> dict[str, float] | None:
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(_number(v) is not None for v in value):
        return {str(i): float(p) for i, p in enumerate(value)}
    return None


def _parse_one(item: Any, mapping: ResponseMapping | None = None) -> Prediction:
    """One answer: a value, a probability vector, a Hugging Face list of class scores, or an
    object whose keys ``mapping`` names (else the usual keys)."""
    if isinstance(item, list) and item and all(_label_score(x) for x in item):
        classes = {str(x["label"]): float(x["score"]) for x in item}
        return Prediction(max(classes, key=classes.__getitem__), classes)
    if isinstance(item, Mapping):

        def first(path: str | None, keys: tuple[str, ...]) -> Any:
            if path is not None:
                found = _at(item, path)
                return None if found is _MISSING else found
            return next((item[k] for k in keys if k in item), None)

        m = mapping or ResponseMapping()
        prediction = first(m.prediction, _PREDICTION_KEYS)
        probabilities = _probabilities(first(m.probabilities, _PROBABILITY_KEYS))
        score = _number(first(m.confidence, _CONFIDENCE_KEYS))
        if score is None and m.probabilities is None:
            score = _number(next((item[k] for k in _PROBABILITY_KEYS if k in item), None))
        if prediction is None and probabilities:
            prediction = max(probabilities, key=probabilities.__getitem__)
        return Prediction(prediction, probabilities, score)
    if isinstance(item, list):
        # a bare list is a probability vector over classes 0..k-1
        probabilities = {str(i): float(p) for i, p in enumerate(item)}
        best = max(range(len(item)), key=item.__getitem__) if item else None
        return Prediction(best, probabilities or None)
    return Prediction(item, None, _number(item))


class RemotePredictor:
    """A version served elsewhere, called over HTTP with a per-call timeout.

    ``endpoint`` is the version's stored endpoint: ``url``, ``protocol`` (``"json"`` — the
    default — or ``"v2"``/``"kserve"``), for v2 the remote model ``name`` (defaults to the
    model's name), and optional ``headers``.
    """

    is_remote = True

    def __init__(
        self, endpoint: Mapping[str, Any], spec: ModelSpec, *, timeout_s: float = 2.0
    ) -> None:
        url = endpoint.get("url")
        if not url or not isinstance(url, str):
            raise InvalidInput("a remote version needs an endpoint url")
        protocol = str(endpoint.get("protocol") or "json").lower()
        if protocol in {"kserve", "v2", "open-inference", "oip"}:
            protocol = "v2"
        elif protocol not in {"json", "generic"}:
            raise InvalidInput(
                f"unknown endpoint protocol {protocol!r}; use 'json' or 'v2' (KServe)",
                protocol=protocol,
            )
        else:
            protocol = "json"
        self.protocol = protocol
        self.mapping = ResponseMapping.of(endpoint.get("response"))
        self.spec = spec
        self.timeout_s = timeout_s
        self.headers = {str(k): str(v) for k, v in (endpoint.get("headers") or {}).items()}
        remote_name = str(
            endpoint.get("name")
            or endpoint.get("model_name")
            or endpoint.get("remote_name")
            or spec.name
        )
        base = url.rstrip("/")
        if protocol == "v2" and "/v2/models/" not in base:
            base = f"{base}/v2/models/{remote_name}/infer"
        self.url = base
        self.shown_url = mask_url(base)  # errors reach callers and records: no credentials
        self._sync_client: Any = None
        self._async: tuple[Any, Any] | None = None  # (event loop, httpx.AsyncClient)
        self._lock = threading.Lock()

    # -- payloads

    def payload(self, instances: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The request body for ``instances`` in this endpoint's protocol."""
        rows = [dict(row) for row in instances]
        if self.protocol == "json":
            return {"instances": rows}
        inputs = []
        for feature in self.spec.features:
            inputs.append(
                {
                    "name": feature.name,
                    "shape": [len(rows)],
                    "datatype": _V2_TYPES[feature.type],
                    "data": [row.get(feature.name) for row in rows],
                }
            )
        return {"inputs": inputs}

    def parse(self, body: Any, count: int) -> list[Prediction]:
        """Predictions from a response body; ``PredictionError`` when it is not well formed."""
        if self.protocol == "json":
            predictions = [_parse_one(item, self.mapping) for item in self._answers(body, count)]
        elif not isinstance(body, Mapping):
            raise PredictionError(
                f"remote endpoint {self.shown_url} answered with a non-object body"
            )
        else:
            predictions = self._parse_v2(body, count)
        if len(predictions) != count:
            raise PredictionError(
                f"remote endpoint {self.shown_url} returned {len(predictions)} predictions "
                f"for {count} instances"
            )
        return predictions

    def _answers(self, body: Any, count: int) -> list[Any]:
        """The answers of a generic JSON body, one per instance (see ``RESPONSE_HINT``)."""
        if self.mapping is not None and self.mapping.predictions is not None:
            found = _at(body, self.mapping.predictions)
            if isinstance(found, list):
                return found
            if isinstance(found, Mapping) and count == 1:
                return [found]
            raise PredictionError(
                f"remote endpoint {self.shown_url} answered without answers at "
                f"{self.mapping.predictions!r} (the response mapping's 'predictions')",
                hint=RESPONSE_HINT,
            )
        if isinstance(body, list):
            if count == 1 and len(body) > 1 and all(_label_score(x) for x in body):
                return [body]  # a Hugging Face pipeline's scores of every class, for one input
            return body
        if not isinstance(body, Mapping):
            raise PredictionError(
                f"remote endpoint {self.shown_url} answered with a non-object body",
                hint=RESPONSE_HINT,
            )
        items = body.get("predictions")
        if isinstance(items, list):
            return items
        mapped = self.mapping is not None and (
            self.mapping.prediction or self.mapping.confidence or self.mapping.probabilities
        )
        if count == 1 and (mapped or any(k in body for k in _ITEM_KEYS)):
            return [body]  # a single object answers a single instance
        keys = ", ".join(repr(k) for k in list(body)[:8]) or "none"
        raise PredictionError(
            f"remote endpoint {self.shown_url} answered without a 'predictions' list "
            f"(its keys: {keys})",
            hint=RESPONSE_HINT,
        )

    def _parse_v2(self, body: Mapping[str, Any], count: int) -> list[Prediction]:
        outputs = body.get("outputs")
        if not isinstance(outputs, list) or not outputs:
            raise PredictionError(f"remote endpoint {self.shown_url} answered without 'outputs'")
        labels = None
        proba = None
        for output in outputs:
            if not isinstance(output, Mapping) or not isinstance(output.get("data"), list):
                raise PredictionError(
                    f"remote endpoint {self.shown_url}: malformed output {output!r}"
                )
            name = str(output.get("name", "")).lower()
            shape = output.get("shape") or [len(output["data"])]
            if "proba" in name and len(shape) == 2:
                width = int(shape[1])
                data = output["data"]
                proba = [data[i * width : (i + 1) * width] for i in range(int(shape[0]))]
            elif labels is None:
                labels = output["data"]
        if labels is None and proba is not None:
            return [_parse_one(row) for row in proba]
        assert labels is not None
        out = [_parse_one(label) for label in labels]
        if proba is not None and len(proba) == len(out):
            for prediction, row in zip(out, proba, strict=True):
                prediction.probabilities = {str(i): float(p) for i, p in enumerate(row)}
        return out

    # -- transport

    def _client(self) -> Any:
        with self._lock:
            if self._sync_client is None:
                import httpx

                self._sync_client = httpx.Client(headers=self.headers)
            return self._sync_client

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """Turn httpx's timeouts and connection failures into ``PredictionError``."""
        import httpx

        try:
            yield
        except httpx.TimeoutException as exc:
            raise PredictionError(
                f"remote endpoint {self.shown_url} timed out after {self.timeout_s * 1000:.0f} ms"
            ) from exc
        except httpx.HTTPError as exc:
            raise PredictionError(f"remote endpoint {self.shown_url} failed: {exc}") from exc

    def predict(self, instances: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """Call the endpoint (blocking); ``PredictionError`` on failure or timeout."""
        with self._transport_errors():
            response = self._client().post(
                self.url, json=self.payload(instances), timeout=self.timeout_s
            )
        return self._answer(response, len(instances))

    async def apredict(self, instances: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """Call the endpoint without blocking the event loop."""
        import httpx

        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            self._async = (loop, httpx.AsyncClient(headers=self.headers))
        client = self._async[1]
        with self._transport_errors():
            response = await client.post(
                self.url, json=self.payload(instances), timeout=self.timeout_s
            )
        return self._answer(response, len(instances))

    def _answer(self, response: Any, count: int) -> list[Prediction]:
        if response.status_code >= 400:
            text = response.text[:200]
            raise PredictionError(
                f"remote endpoint {self.shown_url} answered HTTP {response.status_code}: {text}",
                status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise PredictionError(
                f"remote endpoint {self.shown_url} answered with invalid JSON"
            ) from exc
        return self.parse(body, count)

    def close(self) -> None:
        with self._lock:
            if self._sync_client is not None:
                self._sync_client.close()
                self._sync_client = None

    async def aclose(self) -> None:
        self.close()
        if self._async is not None:
            loop, client = self._async
            self._async = None
            if loop is asyncio.get_running_loop():
                await client.aclose()
