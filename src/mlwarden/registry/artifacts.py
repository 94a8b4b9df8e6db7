"""Model artifacts: scikit-learn estimators saved with skops, loaded without unpickling.

``load_model`` reads a skops file (a zip of a JSON schema plus numpy arrays) and checks every
object the schema describes against an allow-list of exact type names before a single object
is built, so an uploaded file cannot run code the way a pickle can:

- instances: scikit-learn's estimators, transformers and pipelines (``all_estimators()``),
  mlwarden's own cleaning step (``registry.preparation.CleaningSteps``, plain data), the
  few internal types their fitted state holds (trees, losses, links, the histogram binner),
  LightGBM's scikit-learn models, NumPy arrays and scalars, and plain containers;
- types as values (``dtype=np.float64``): numbers, strings and containers, nothing callable;
- functions: only ``SAFE_FUNCTIONS`` (elementwise NumPy ufuncs and scikit-learn's univariate
  score functions). Anything else callable, ``builtins.exec``, ``numpy.vectorize``,
  ``functools.partial``, ``operator.methodcaller``, a bound method, is refused.

A refused file raises ``InvalidArtifact`` naming each refused type (``untrusted_types``).
skops' own trust list is not relied on: it trusts every NumPy ufunc and reports nothing for
what it trusts, and a name a module prefix trusted (``builtins``, ``numpy``) was enough to run
code. After loading, the node arrays of decision trees are checked too, since scikit-learn
indexes them without bounds checks (a crafted index would read memory or loop forever).

>>> from sklearn.linear_model import LogisticRegression
>>> model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
>>> load_model(dump_model(model)).predict([[2.5]]).tolist()
[1]
>>> load_model(b"not a model")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mlwarden.errors.InvalidArtifact: the model file is not a skops file (not a zip archive); ...
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.tree._tree import TREE_LEAF, Tree
from sklearn.utils import all_estimators

from mlwarden.errors import InvalidArtifact


def _names(module: str, *classes: str) -> set[str]:
    return {f"{module}.{name}" for name in classes}


_NUMPY_SCALARS = {f"numpy.{t.__name__}" for t in set(np.sctypeDict.values())}

# The state of a fitted scikit-learn model holds these besides estimators. Each is data with a
# fixed constructor: losses and links (gradient boosting, linear models), the binner of the
# histogram gradient boosting, and the two tree stores, whose arrays are checked after loading
_SKLEARN_INTERNALS = (
    _names(
        "sklearn._loss.loss",
        "AbsoluteError", "ExponentialLoss", "HalfBinomialLoss", "HalfGammaLoss",
        "HalfMultinomialLoss", "HalfPoissonLoss", "HalfSquaredError", "HalfTweedieLoss",
        "HalfTweedieLossIdentity", "HuberLoss", "PinballLoss",
    )
    | _names(
        "sklearn._loss.link",
        "HalfLogitLink", "IdentityLink", "Interval", "LogLink", "LogitLink", "MultinomialLogit",
    )
    | _names("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper")
    | _names("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor")
)  # fmt: skip

# LightGBM's scikit-learn estimators (the optional model family): their booster is saved as
# LightGBM's own text model, not a pickle
LIGHTGBM_TYPES = frozenset(
    _names("lightgbm.sklearn", "LGBMClassifier", "LGBMRegressor")
    | _names("lightgbm.basic", "Booster")
)

# mlwarden's own step in front of a model the assistant trained: the dataset's cleaning, held
# as plain data (``registry.preparation``), so a served model takes the raw columns
MLWARDEN_TYPES = frozenset({"mlwarden.registry.preparation.CleaningSteps"})

SKLEARN_ESTIMATORS = frozenset(
    name
    for _, cls in all_estimators()
    if (name := f"{cls.__module__}.{cls.__name__}").startswith("sklearn.")
)

# Plain data usable as a value (a ``dtype=`` parameter, a dict's key type, a default factory):
# calling one on a string or number builds a number, a string or an empty container
VALUE_TYPES = frozenset(
    _names("builtins", "bool", "int", "float", "complex", "str", "bytes", "list", "tuple")
    | _names("builtins", "dict", "set")
    | {"collections.OrderedDict"}
    | _NUMPY_SCALARS
)

# The only functions a model file may hold. NumPy ufuncs are compiled elementwise arithmetic:
# they take arrays, return arrays and reach no Python object, file or interpreter; these are
# the usual ``FunctionTransformer`` / ``TransformedTargetRegressor`` transforms. The score
# functions are the defaults of scikit-learn's univariate feature selectors (statistics of
# ``X`` and ``y``, called while fitting only). A general function (``numpy.full_like``,
# ``numpy.vectorize``, ``builtins.eval``) can build or call arbitrary objects, so none is listed.
SAFE_FUNCTIONS = frozenset(
    _names(
        "numpy",
        "absolute", "cbrt", "exp", "exp2", "expm1", "log", "log10", "log1p", "log2",
        "sign", "sqrt", "square", "arcsinh", "tanh",
    )
    | _names(
        "sklearn.feature_selection._univariate_selection",
        "chi2", "f_classif", "f_regression", "r_regression",
    )
    | _names(
        "sklearn.feature_selection._mutual_info", "mutual_info_classif", "mutual_info_regression"
    )
)  # fmt: skip

# What each skops node (its ``__loader__``) may name. A loader builds its object from the
# stored type name (``gettype(module, class)`` then a call), so the name is checked against
# what that loader may build
_ALLOWED: dict[str, frozenset[str]] = {
    "ObjectNode": SKLEARN_ESTIMATORS | _SKLEARN_INTERNALS | LIGHTGBM_TYPES | MLWARDEN_TYPES,
    "LossNode": frozenset(
        _names(
            "sklearn._loss._loss",
            "CyAbsoluteError", "CyExponentialLoss", "CyHalfBinomialLoss", "CyHalfGammaLoss",
            "CyHalfMultinomialLoss", "CyHalfPoissonLoss", "CyHalfSquaredError",
            "CyHalfTweedieLoss", "CyHalfTweedieLossIdentity", "CyHuberLoss", "CyPinballLoss",
        )
        | _names(
            "sklearn.linear_model._sgd_fast",
            "EpsilonInsensitive", "Hinge", "ModifiedHuber", "SquaredEpsilonInsensitive",
            "SquaredHinge",
        )
    ),
    "TreeNode": frozenset({"sklearn.tree._tree.Tree"}),
    "NdArrayNode": frozenset({"numpy.ndarray"} | _NUMPY_SCALARS),
    "DictNode": frozenset({"builtins.dict", "collections.OrderedDict"}),
    "DefaultDictNode": frozenset({"collections.defaultdict"}),
    "ListNode": frozenset({"builtins.list"}),
    "SetNode": frozenset({"builtins.set"}),
    "TupleNode": frozenset({"builtins.tuple"}),  # a namedtuple would be called with the items
    "TypeNode": VALUE_TYPES,
    "FunctionNode": SAFE_FUNCTIONS,
    "RandomStateNode": frozenset({"numpy.random.mtrand.RandomState"}),
    "RandomGeneratorNode": frozenset({"numpy.random._generator.Generator"}),
}  # fmt: skip
# These build their object without the stored name (JSON, bytes, a slice, an array read with
# allow_pickle=False, a reference to a node checked where it first appeared)
_NAME_FREE = frozenset(
    {
        "JsonNode", "BytesNode", "BytearrayNode", "SliceNode", "DTypeNode", "MaskedArrayNode",
        "SparseMatrixNode", "CachedNode",
    }
)  # fmt: skip
# Loaders that build something callable; a bound method, a ``functools.partial``,
# ``operator.methodcaller`` (and ``attrgetter``, ``itemgetter``) are never allowed, nor is a
# constructor call taken from ``__reduce__`` (``ConstructorFromReduceNode``)
_CALLABLE_LOADERS = frozenset(
    {"FunctionNode", "TypeNode", "MethodNode", "PartialNode", "OperatorFuncNode"}
)


def dump_model(estimator: Any) -> bytes:
    """Serialise ``estimator`` (any scikit-learn estimator or pipeline) to skops bytes.

    Refuses (``InvalidArtifact``) an estimator whose file ``load_model`` would refuse, so
    nothing is stored that cannot be served."""
    try:
        data = sio.dumps(estimator)
    except Exception as exc:  # skops raises TypeError and friends for unsupported objects
        raise InvalidArtifact(f"cannot save {type(estimator).__name__} with skops: {exc}") from exc
    _refuse_untrusted(data)
    return data


def untrusted_types(data: bytes, trusted: Iterable[str] = ()) -> list[str]:
    """The types (``module.name``) named in a skops file that ``load_model`` refuses, those
    listed in ``trusted`` aside."""
    return sorted(_audit(data, frozenset(trusted))[0])


def skops_trusted_types(data: bytes) -> list[str]:
    """What skops must be told to trust to load ``data`` (the names it reports that this
    module's allow-list accepts); ``InvalidArtifact`` when the file holds anything refused."""
    return _refuse_untrusted(data)


def load_model(data: bytes, *, trusted: Iterable[str] = ()) -> Any:
    """Rebuild an estimator from skops bytes, refusing unknown types (never unpickles).

    Raises ``InvalidArtifact`` when ``data`` is not a skops file, is damaged, names types
    that are not trusted (the message lists them), or holds a tree whose node arrays point
    outside themselves.
    """
    allowed = _refuse_untrusted(data, frozenset(trusted))
    try:
        estimator = sio.loads(data, trusted=allowed)
    except Exception as exc:
        raise InvalidArtifact(f"the model file is damaged and cannot be loaded: {exc}") from exc
    _check_trees(estimator)
    return estimator


_SHARED_LIMIT = 8  # estimators kept by ``load_shared_model``, the most recently used
_shared: OrderedDict[bytes, Any] = OrderedDict()
_shared_lock = threading.Lock()


def load_shared_model(data: bytes) -> Any:
    """``load_model``, for callers that only predict: the same bytes give the same estimator
    object, loaded once. In one process the gateway, the monitor's reference and the agent's
    evidence each loaded every version they ran (about 0.3 s of CPU each for a small gradient
    boosting, most of a simulation's agent passes: docs/benchmarks.md, "Simulation speed").
    Never ``fit`` what this returns: it may be serving requests at the same time."""
    key = hashlib.sha256(data).digest()
    with _shared_lock:
        if key in _shared:
            _shared.move_to_end(key)
            return _shared[key]
    estimator = load_model(data)  # outside the lock: a slow load holds up no other model
    with _shared_lock:
        _shared[key] = estimator
        while len(_shared) > _SHARED_LIMIT:
            _shared.popitem(last=False)
    return estimator


def _refuse_untrusted(data: bytes, trusted: frozenset[str] = frozenset()) -> list[str]:
    refused, allowed = _audit(data, trusted)
    if refused:
        names = sorted(refused)
        shown = [f"{name} (callable)" if refused[name] else name for name in names]
        raise InvalidArtifact(
            f"the model file holds types that are not trusted: {', '.join(shown)}; only "
            "scikit-learn estimators and transformers, LightGBM's scikit-learn models, NumPy "
            "arrays and plain data load, and no function but NumPy's elementwise ufuncs "
            f"({', '.join(sorted(n.split('.')[-1] for n in SAFE_FUNCTIONS if n[:6] == 'numpy.'))})",
            untrusted_types=names,
        )
    return allowed


def _audit(data: bytes, trusted: frozenset[str]) -> tuple[dict[str, bool], list[str]]:
    """({refused name: whether it is callable}, names skops reports that are allowed)."""
    schema = _read_schema(data)
    refused: dict[str, bool] = {}
    seen: set[str] = set()
    for loader, name in _nodes(schema):
        if loader in _NAME_FREE or name in trusted or name in _ALLOWED.get(loader, ()):
            seen.add(name)
        else:
            refused[name] = refused.get(name, False) or loader in _CALLABLE_LOADERS
    if refused:  # named before skops reads the file, which fails on some of these itself
        return refused, []
    try:
        reported = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise InvalidArtifact(f"the model file is not a valid skops file: {exc}") from exc
    # skops reports a few names no node carries (a bound method as ``Class.method``, the bit
    # generator a random Generator would call): anything outside what was checked is refused
    refused.update({name: True for name in reported if name not in seen})
    return refused, [name for name in reported if name in seen]


def _nodes(schema: Any) -> Iterator[tuple[str, str]]:
    """(loader, module.class) of every node of a skops schema, however deeply nested.

    Every value is searched, not just the keys each loader reads, so no node escapes the
    check by sitting under a key this code does not know about."""
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            loader = item.get("__loader__")
            if isinstance(loader, str):
                name = f"{item.get('__module__')}.{item.get('__class__')}"
                content = item.get("content")
                if loader == "MethodNode" and isinstance(content, dict):
                    name = f"{name}.{content.get('func')}"  # named by its method, as skops does
                yield loader, name
                if loader == "FunctionNode" and isinstance(content, dict) and "function" in content:
                    # protocol 0 (a file may claim it) imports the function the content names
                    yield loader, f"{content.get('module_path')}.{content.get('function')}"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _read_schema(data: bytes) -> Any:
    if not isinstance(data, bytes | bytearray) or not data:
        raise InvalidArtifact("the model file is empty; save it with skops.io.dump")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise InvalidArtifact(
            "the model file is not a skops file (not a zip archive); save it with skops.io.dump"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "schema.json" not in archive.namelist():
                raise InvalidArtifact(
                    "the model file is a zip archive but not a skops file (no schema.json)"
                )
            bad = archive.testzip()
            if bad is not None:
                raise InvalidArtifact(
                    f"the model file is damaged (member {bad!r} fails its checksum)"
                )
            return json.loads(archive.read("schema.json"))
    except zipfile.BadZipFile as exc:
        raise InvalidArtifact(f"the model file is a damaged zip archive: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidArtifact(f"the model file's schema.json is not valid JSON: {exc}") from exc


def _check_trees(estimator: Any) -> None:
    """Refuse trees whose node arrays point outside themselves or past the model's features.

    scikit-learn follows a tree's child and feature indices without bounds checks, so a
    crafted file would read memory at prediction; a child must come after its parent (as
    scikit-learn builds them), which also rules out cycles."""
    stack: list[tuple[Any, int | None]] = [(estimator, None)]
    visited: set[int] = set()
    while stack:
        obj, n_features = stack.pop()
        if id(obj) in visited:
            continue
        visited.add(id(obj))
        if isinstance(obj, Tree):
            _check_tree(obj, n_features)
        elif isinstance(obj, TreePredictor):
            _check_predictor(obj, n_features)
        elif isinstance(obj, dict):
            stack.extend((value, n_features) for value in obj.values())
        elif isinstance(obj, list | tuple):
            stack.extend((value, n_features) for value in obj)
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                stack.extend((value, n_features) for value in obj.ravel())
        elif type(obj).__module__.startswith(("sklearn.", "lightgbm.")) and hasattr(
            obj, "__dict__"
        ):
            # trees live only inside scikit-learn and LightGBM objects; the rest is data
            own = getattr(obj, "n_features_in_", None)
            inner = int(own) if isinstance(own, int | np.integer) else n_features
            stack.extend((value, inner) for value in vars(obj).values())


def _check_tree(tree: Tree, n_features: int | None) -> None:
    count = int(tree.node_count)
    if n_features is None or int(tree.n_features) != n_features or count < 1:
        raise InvalidArtifact(
            "the model file holds a decision tree that does not match its estimator "
            f"({tree.n_features} features, {count} nodes)"
        )
    _check_nodes(tree.children_left, tree.children_right, tree.feature, n_features, TREE_LEAF)


def _check_predictor(predictor: TreePredictor, n_features: int | None) -> None:
    nodes = predictor.nodes
    if (
        n_features is None
        or not isinstance(nodes, np.ndarray)
        or nodes.dtype != PREDICTOR_RECORD_DTYPE
        or nodes.ndim != 1
        or len(nodes) < 1
    ):
        raise InvalidArtifact(
            "the model file holds a gradient boosting tree that does not match its estimator"
        )
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, -1, nodes["left"].astype(np.int64))
    right = np.where(leaf, -1, nodes["right"].astype(np.int64))
    _check_nodes(left, right, nodes["feature_idx"], n_features, -1)
    categorical = ~leaf & nodes["is_categorical"].astype(bool)
    bitsets = min(len(predictor.raw_left_cat_bitsets), len(predictor.binned_left_cat_bitsets))
    if np.any(nodes["bitset_idx"][categorical] >= bitsets):
        raise InvalidArtifact("the model file holds a gradient boosting tree with broken splits")


def _check_nodes(
    left: np.ndarray, right: np.ndarray, feature: np.ndarray, n_features: int, leaf: int
) -> None:
    index = np.arange(len(left))
    split = left != leaf
    children_ok = (
        np.all((right == leaf) == ~split)
        and np.all(left[split] > index[split])
        and np.all(right[split] > index[split])
        and np.all(left[split] < len(left))
        and np.all(right[split] < len(left))
    )
    features = feature[split]
    if not (children_ok and np.all(features >= 0) and np.all(features < n_features)):
        raise InvalidArtifact(
            "the model file holds a tree whose nodes point outside the tree or the features"
        )


__all__ = [
    "LIGHTGBM_TYPES",
    "SAFE_FUNCTIONS",
    "SKLEARN_ESTIMATORS",
    "VALUE_TYPES",
    "dump_model",
    "load_model",
    "skops_trusted_types",
    "untrusted_types",
]
