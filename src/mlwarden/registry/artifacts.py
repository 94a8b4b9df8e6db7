"""Model artifacts: scikit-learn estimators saved with skops, loaded without unpickling.

``load_model`` reads a skops file (a zip of a JSON schema plus numpy arrays) and refuses any
type outside a trust list before a single object is built, so an uploaded file cannot run code
the way a pickle can. Trusted by default: types from scikit-learn, NumPy, SciPy and Python's
builtins, and LightGBM's scikit-learn estimators (``TRUSTED_TYPES``). Anything else (say
``xgboost.XGBClassifier`` or ``os.system``) is refused with ``InvalidArtifact`` naming it,
unless the caller lists it in ``trusted=``.

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

import io
import zipfile
from collections.abc import Iterable
from typing import Any

import skops.io as sio

from mlwarden.errors import InvalidArtifact

TRUSTED_MODULES = ("sklearn", "numpy", "scipy", "builtins")
# LightGBM's scikit-learn estimators (the optional model family): their booster is saved as
# LightGBM's own text model, not a pickle, the same footing as scikit-learn's trees
TRUSTED_TYPES = frozenset(
    {
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.basic.Booster",
        "collections.OrderedDict",
    }
)


def dump_model(estimator: Any) -> bytes:
    """Serialise ``estimator`` (any scikit-learn estimator or pipeline) to skops bytes."""
    try:
        return sio.dumps(estimator)
    except Exception as exc:  # skops raises TypeError and friends for unsupported objects
        raise InvalidArtifact(f"cannot save {type(estimator).__name__} with skops: {exc}") from exc


def untrusted_types(data: bytes, trusted: Iterable[str] = ()) -> list[str]:
    """The types named in a skops file that are neither in a trusted module, nor one of
    ``TRUSTED_TYPES``, nor ``trusted``."""
    _check_container(data)
    try:
        named = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise InvalidArtifact(f"the model file is not a valid skops file: {exc}") from exc
    extra = TRUSTED_TYPES | set(trusted)
    return sorted(
        name for name in named if name not in extra and name.split(".", 1)[0] not in TRUSTED_MODULES
    )


def load_model(data: bytes, *, trusted: Iterable[str] = ()) -> Any:
    """Rebuild an estimator from skops bytes, refusing unknown types (never unpickles).

    Raises ``InvalidArtifact`` when ``data`` is not a skops file, is damaged, or names types
    that are not trusted (the message lists them).
    """
    extra = list(trusted)
    refused = untrusted_types(data, extra)
    if refused:
        raise InvalidArtifact(
            f"the model file holds types that are not trusted: {', '.join(refused)}; "
            "only scikit-learn, LightGBM, NumPy, SciPy and builtin types load unless trusted "
            "explicitly",
            untrusted_types=refused,
        )
    try:
        allowed = sio.get_untrusted_types(data=data)
        return sio.loads(data, trusted=allowed)
    except InvalidArtifact:
        raise
    except Exception as exc:
        raise InvalidArtifact(f"the model file is damaged and cannot be loaded: {exc}") from exc


def _check_container(data: bytes) -> None:
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
    except zipfile.BadZipFile as exc:
        raise InvalidArtifact(f"the model file is a damaged zip archive: {exc}") from exc
    if bad is not None:
        raise InvalidArtifact(f"the model file is damaged (member {bad!r} fails its checksum)")


__all__ = ["TRUSTED_MODULES", "TRUSTED_TYPES", "dump_model", "load_model", "untrusted_types"]
