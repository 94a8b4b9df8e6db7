"""Datasets of the assistant: stored as Parquet in the data directory, versioned in the database.

Every change makes a new version (upload → 1, clean → 2 with parent 1 …); nothing is
overwritten, so an experiment always points at the exact data it was trained on.

>>> import tempfile
>>> from mlwarden.store import Store
>>> store = DatasetStore(Store("sqlite://"), tempfile.mkdtemp())
>>> first = store.add_example("titanic")
>>> (first.name, first.version, first.rows, len(first.columns))
('titanic', 1, 891, 12)
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from mlwarden.datasets import DATASETS
from mlwarden.datasets import load as load_bundled
from mlwarden.errors import Conflict, InvalidInput, NotFound
from mlwarden.paths import check_name, inside, inside_relative
from mlwarden.store import Store
from mlwarden.store.assistant import DatasetVersion

READABLE = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
READABLE |= {".json": "json", ".jsonl": "jsonl"}
FORMATS = ("csv", "parquet")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, TSV, Parquet or JSON (lines) file, with a clear error for a bad one."""
    path = Path(path).expanduser()
    if not path.exists():
        raise NotFound(f"file not found: {path}", path=str(path))
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder, not a data file", path=str(path))
    return _parse(path, path.name, str(path))


def parse_table(content: bytes, filename: str) -> pd.DataFrame:
    """The uploaded ``content`` of a file called ``filename`` (its suffix says the format).

    Parsed in memory: an upload never becomes a file of its own on the server, so its name
    cannot place anything anywhere.
    """
    shown = PurePosixPath(filename.replace("\\", "/")).name or "upload"
    return _parse(io.BytesIO(content), shown, shown)


def _parse(source: Path | io.BytesIO, name: str, shown: str) -> pd.DataFrame:
    kind = READABLE.get(PurePosixPath(name).suffix.lower())
    if kind is None:
        known = ", ".join(sorted(READABLE))
        raise InvalidInput(f"cannot read {name}: use one of {known}", path=shown)
    try:
        if kind == "csv":
            frame = pd.read_csv(source)
        elif kind == "tsv":
            frame = pd.read_csv(source, sep="\t")
        elif kind == "parquet":
            frame = pd.read_parquet(source)
        else:
            frame = pd.read_json(source, lines=kind == "jsonl")
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {name} as {kind}: {exc}", path=shown) from exc
    return check_frame(frame, name)


def check_frame(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """A frame fit to store: some rows, some columns, unique string column names."""
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise InvalidInput(
            f"{source} has no data ({frame.shape[0]} rows, {frame.shape[1]} columns)"
        )
    frame = frame.rename(columns=str)
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise InvalidInput(f"{source} has duplicated column names: {duplicated}")
    return frame


class DatasetStore:
    """Versioned datasets: Parquet files under ``data_dir/datasets`` and rows in ``datasets``."""

    def __init__(self, store: Store, data_dir: str | Path) -> None:
        self.store = store
        self.data_dir = Path(data_dir)

    # ----------------------------------------------------------------------------- writing

    def upload(self, path: str | Path, name: str | None = None) -> DatasetVersion:
        """Store the local file at ``path`` as a new version of ``name`` (default: the file's
        stem). Only for a person acting on their own machine (the CLI): a server takes
        uploaded content through :meth:`add_upload`."""
        frame = read_table(path)
        name = name or Path(path).stem
        return self.add_frame(name, frame, description=f"uploaded from {Path(path).name}")

    def add_upload(self, filename: str, content: bytes, name: str) -> DatasetVersion:
        """Store uploaded ``content`` (a file called ``filename``) as a new version of ``name``."""
        check_name(name, "dataset name")
        frame = parse_table(content, filename)
        shown = PurePosixPath(filename.replace("\\", "/")).name
        return self.add_frame(name, frame, description=f"uploaded from {shown}")

    def add_example(self, example: str, name: str | None = None) -> DatasetVersion:
        """Store one of the datasets bundled with mlwarden (``mlwarden.datasets.DATASETS``)."""
        if example not in DATASETS:
            known = ", ".join(sorted(DATASETS))
            raise NotFound(f"no bundled example {example!r}; examples are: {known}")
        frame = load_bundled(example)
        return self.add_frame(
            name or example,
            frame,
            description=f"bundled example {example}: {DATASETS[example].description}",
        )

    def add_frame(
        self,
        name: str,
        frame: pd.DataFrame,
        *,
        parent_version: int | None = None,
        description: str = "",
        cleaning: Sequence[Mapping[str, Any]] | None = None,
    ) -> DatasetVersion:
        """Write ``frame`` as the next version of ``name`` (``cleaning``: the steps that made
        it from ``parent_version``, kept so a model trained on it can replay them)."""
        check_name(name, "dataset name")
        frame = check_frame(frame, name)
        for _attempt in range(5):
            number = self._next_version(name)
            relative = Path("datasets") / name / f"v{number}.parquet"
            target = inside(self.data_dir, *relative.parts, what="dataset name")
            target.parent.mkdir(parents=True, exist_ok=True)
            # Parquet keeps dtypes; mixed-type object columns are stored as text so they load
            # back the same way instead of failing in pyarrow.
            frame.pipe(_parquet_safe).to_parquet(target, index=False)
            stored = self.store.add_dataset_version(
                name=name,
                version=number,
                path=relative.as_posix(),
                rows=int(frame.shape[0]),
                columns=[str(c) for c in frame.columns],
                parent_version=parent_version,
                description=description,
                cleaning=cleaning,
            )
            if stored:
                return self.get(name, number)
            # another writer took this number; the file is rewritten under the next
        raise Conflict(f"could not allocate a version number for dataset {name!r}")

    def _next_version(self, name: str) -> int:
        return 1 + (self.store.newest_dataset_version(name) or 0)

    # ----------------------------------------------------------------------------- reading

    def versions(self, name: str | None = None) -> list[DatasetVersion]:
        """Every stored version (of ``name`` when given), oldest first."""
        return self.store.dataset_versions(name)

    def names(self) -> list[str]:
        return self.store.dataset_names()

    def get(self, name: str, version: int | None = None) -> DatasetVersion:
        """Version ``version`` of ``name``, or its newest version."""
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none yet"
            raise NotFound(f"no dataset named {name!r}; datasets: {known}", dataset=name)
        if version is None:
            return versions[-1]
        for candidate in versions:
            if candidate.version == version:
                return candidate
        numbers = [v.version for v in versions]
        raise NotFound(f"dataset {name!r} has no version {version}; versions: {numbers}")

    def latest_cleaned(self, name: str) -> DatasetVersion:
        """The newest version derived from another one (what "the cleaned titanic" means)."""
        derived = [v for v in self.versions(name) if v.parent_version is not None]
        if not derived:
            self.get(name)  # a clear "no such dataset" first
            raise NotFound(
                f"dataset {name!r} has no cleaned version yet; ask to clean {name} first"
            )
        return derived[-1]

    def lineage(
        self, name: str, version: int | None = None
    ) -> tuple[DatasetVersion, list[dict[str, Any]]] | None:
        """The raw version a cleaned version of ``name`` was made from, and every cleaning step
        from it to this one, in order; None when the version is not cleaned, or when a link
        of its chain kept no steps (cleaned before they were kept)."""
        by_number = {v.version: v for v in self.versions(name)}
        current = self.get(name, version)
        if current.parent_version is None:
            return None
        chain: list[list[dict[str, Any]]] = []
        seen: set[int] = set()
        while current.parent_version is not None:
            parent = by_number.get(current.parent_version)
            if current.cleaning is None or parent is None or current.version in seen:
                return None
            seen.add(current.version)
            chain.append(current.cleaning)
            current = parent
        return current, [step for steps in reversed(chain) for step in steps]

    def last(self) -> DatasetVersion | None:
        """The most recently stored version of any dataset (what "it" refers to)."""
        return self.store.last_dataset_version()

    def choose(
        self, name: str, version: int | None = None, *, fmt: str = "csv", cleaned: bool = False
    ) -> DatasetVersion:
        """The version a download of ``name`` in format ``fmt`` means: ``version``, else the
        newest cleaned one when ``cleaned``, else the newest."""
        if fmt not in FORMATS:
            raise InvalidInput(f"format must be one of {FORMATS}, got {fmt!r}")
        return self.latest_cleaned(name) if cleaned and version is None else self.get(name, version)

    def frame(self, name: str, version: int | None = None) -> pd.DataFrame:
        """The data of a stored version."""
        return self._read(self.get(name, version))

    def _read(self, info: DatasetVersion) -> pd.DataFrame:
        # the stored path is checked again: a row written before names were checked could
        # still point outside the data directory
        path = inside_relative(self.data_dir, info.path)
        if not path.exists():
            raise NotFound(
                f"the file of {info.label} is missing from the data directory: {info.path}"
            )
        return pd.read_parquet(path)

    def encode(
        self, name: str, version: int | None = None, *, fmt: str = "csv", cleaned: bool = False
    ) -> tuple[DatasetVersion, bytes]:
        """A stored version as the bytes of a CSV or Parquet file (what a download sends)."""
        info = self.choose(name, version, fmt=fmt, cleaned=cleaned)
        frame = self._read(info)
        if fmt == "csv":
            return info, frame.to_csv(index=False).encode()
        out = io.BytesIO()
        frame.to_parquet(out, index=False)
        return info, out.getvalue()

    def export(
        self,
        name: str,
        version: int | None = None,
        *,
        output: str | Path | None = None,
        fmt: str = "csv",
        cleaned: bool = False,
    ) -> tuple[DatasetVersion, Path]:
        """Write a stored version to the local file ``output`` as CSV or Parquet; returns it and
        the file. Only for a person acting on their own machine (the CLI): a server answers
        with :meth:`encode`'s bytes instead."""
        info, content = self.encode(name, version, fmt=fmt, cleaned=cleaned)
        path = Path(output) if output else Path(f"{info.name}-v{info.version}.{fmt}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return info, path


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            values = out[column].dropna()
            if not values.map(type).eq(str).all():
                out[column] = out[column].map(lambda v: v if pd.isna(v) else str(v))
    return out
