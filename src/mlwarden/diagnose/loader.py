"""Load and validate playbooks: the bundled library plus an optional folder of the user's own.

A user playbook whose ``id`` equals a bundled one replaces it, so teams can adapt the shipped
checks (their own dashboards, their own table names) without forking the package.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from mlwarden.diagnose.schema import Playbook
from mlwarden.errors import InvalidInput, NotFound

BUNDLED_DIR = Path(__file__).with_name("playbooks")


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_playbook_file(path: Path) -> Playbook:
    """Parse and validate one YAML playbook; errors name the file and the offending field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML: {exc}", file=str(path)) from exc
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc}", file=str(path)) from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: a playbook must be a YAML mapping", file=str(path))
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field_path(tuple(first["loc"]))
        raise InvalidInput(
            f"{path}: field {field}: {first['msg']} ({exc.error_count()} error(s) in total)",
            file=str(path),
            field=field,
        ) from exc
    if playbook.id != path.stem:
        raise InvalidInput(
            f"{path}: field id: {playbook.id!r} must equal the file name {path.stem!r}",
            file=str(path),
            field="id",
        )
    return playbook


def _load_dir(folder: Path) -> dict[str, Playbook]:
    if not folder.is_dir():
        raise NotFound(f"playbook folder {folder} does not exist", folder=str(folder))
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    return {pb.id: pb for pb in (load_playbook_file(f) for f in files)}


@lru_cache(maxsize=1)
def _bundled() -> tuple[Playbook, ...]:
    return tuple(_load_dir(BUNDLED_DIR).values())


def load_playbooks(extra_dir: str | Path | None = None) -> list[Playbook]:
    """All playbooks sorted by id: the bundled ones, then ``extra_dir``'s (which win on equal id).

    >>> ids = [p.id for p in load_playbooks()]
    >>> "feature_null_explosion" in ids and len(ids) >= 25
    True
    """
    merged = {pb.id: pb for pb in _bundled()}
    if extra_dir is not None:
        merged.update(_load_dir(Path(extra_dir)))
    return [merged[k] for k in sorted(merged)]


def get_playbook(playbook_id: str, playbooks: list[Playbook] | None = None) -> Playbook:
    """One playbook by id, or NotFound listing the known ids."""
    playbooks = load_playbooks() if playbooks is None else playbooks
    for pb in playbooks:
        if pb.id == playbook_id:
            return pb
    known = ", ".join(pb.id for pb in playbooks)
    raise NotFound(f"no playbook {playbook_id!r}; known: {known}", playbook=playbook_id)
