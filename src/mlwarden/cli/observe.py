"""What an on-call engineer reads first, from the store: ``signals`` (a model's measurements
window by window), ``records`` (its newest predictions) and ``deployments`` (its deployment
revisions). The playbooks' checks cite these commands, and a test runs every one they cite.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from mlwarden.cli.app import app
from mlwarden.cli.serve import _errors, _open_store

# the agent's bookkeeping row of every stored window, not a measurement
_WINDOW_MARKER = "window.closed"
# more names than this print as one summary line each instead of one column each
_MAX_COLUMNS = 8
_SPAN = re.compile(r"^(\d+)\s*(m|min|h|d|w)$")
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}

DATA_DIR = typer.Option(None, "--data-dir", help="Folder of the SQLite database.")
DATABASE_URL = typer.Option(None, "--database-url", help="SQLAlchemy URL of the database.")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def parse_span(text: str) -> timedelta | int:
    """``--last``: a duration (``90m``, ``24h``, ``7d``, ``2w``) or a number of windows."""
    value = text.strip().lower()
    if value.isdigit() and int(value) > 0:
        return int(value)
    match = _SPAN.match(value)
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (90m, 24h, 7d, 2w) nor a number of windows",
            param_hint="--last",
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def select_names(
    stored: Sequence[str], signals: Sequence[str], feature: str | None
) -> tuple[list[str], list[str]]:
    """The stored names that ``--signal``/``--feature`` ask for, and the asked names that match
    none. A ``--signal`` is a name or a family: ``drift.psi`` is every ``drift.psi.<feature>``."""
    chosen = [n for n in stored if n != _WINDOW_MARKER]
    if feature is not None:
        chosen = [n for n in chosen if n.endswith("." + feature)]
    if not signals:
        return chosen, []
    picked: list[str] = []
    unmatched: list[str] = []
    for asked in signals:
        hits = [n for n in chosen if n == asked or n.startswith(asked + ".")]
        if not hits:
            unmatched.append(asked)
        picked += [n for n in hits if n not in picked]
    return picked, unmatched


def _families(names: Sequence[str]) -> list[str]:
    """Stored names with their last part (a feature or a class) folded: ``null_rate.*``."""
    return sorted(
        {(n.rsplit(".", 1)[0] + ".*") if "." in n else n for n in names if n != _WINDOW_MARKER}
    )


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


@app.command("signals")
def signals(
    model: str = typer.Argument(..., help="The model."),
    signal: list[str] = typer.Option(
        [],
        "--signal",
        "-s",
        help="A signal (accuracy, null_rate.price) or a family (drift.psi: every feature's); "
        "repeatable. Default: every signal.",
    ),
    feature: str = typer.Option(
        None, "--feature", "-f", help="Only the signals of this feature (null_rate, drift …)."
    ),
    last: str = typer.Option(
        "24h",
        "--last",
        help="How far back from the newest window: a duration (90m, 24h, 7d, 2w) or a number "
        "of windows.",
    ),
    as_json: bool = JSON_OPTION,
    data_dir: Path = DATA_DIR,
    database_url: str = DATABASE_URL,
) -> None:
    """A model's signals window by window (drift, data quality, performance, latency, errors),
    as the agent stored them: when a change began and how far it went.

    With up to 8 signals, one column each; with more, one line per signal (its first, last,
    lowest and highest value).
    """
    from mlwarden.store.windows import WindowRepo

    span = parse_span(last)
    with _errors(), _open_store(data_dir, database_url) as store:
        rows = WindowRepo(store).signal_rows(model, span)
    if not rows:
        typer.echo(
            f"error: no window of {model!r} stored yet: the agent stores one per closed window "
            "(mlwarden serve, mlwarden agent or mlwarden check)",
            err=True,
        )
        raise typer.Exit(1)
    stored = sorted({r.name for r in rows})
    names, unmatched = select_names(stored, signal, feature)
    if unmatched or not names:
        asked = ", ".join(unmatched) or f"--feature {feature}"
        typer.echo(
            f"error: no signal {asked} stored for {model!r} in the last {last}; "
            f"stored: {', '.join(_families(stored))}",
            err=True,
        )
        raise typer.Exit(1)
    windows: dict[int, dict[str, Any]] = {}
    for r in rows:
        entry = windows.setdefault(r.window, {"window": r.window, "ts": r.ts, "signals": {}})
        if r.name in names:
            entry["signals"][r.name] = r.value
    ordered = [windows[w] for w in sorted(windows)]
    if as_json:
        out = [{**w, "ts": _iso(w["ts"])} for w in ordered]
        typer.echo(json.dumps({"model": model, "windows": out}, indent=2))
        return
    _signals_table(model, names, ordered)


def _iso(value: datetime) -> str:
    from mlwarden.clock import as_utc

    return as_utc(value).isoformat()


def _signals_table(model: str, names: list[str], windows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    first, last = _iso(windows[0]["ts"])[:16], _iso(windows[-1]["ts"])[:16]
    title = f"{model}: windows {windows[0]['window']}-{windows[-1]['window']} ({first} to {last})"
    if len(names) <= _MAX_COLUMNS:
        table = Table(title=title)
        for column in ("window", "end", *names):
            table.add_column(column, justify="right" if column != "end" else "left")
        for w in windows:
            values = [_number(w["signals"].get(n)) for n in names]
            table.add_row(str(w["window"]), _iso(w["ts"])[:19], *values)
    else:
        table = Table(title=title, caption="--signal or --feature: the values window by window")
        for column in ("signal", "windows", "first", "last", "lowest", "highest"):
            table.add_column(column, justify="left" if column == "signal" else "right")
        for name in names:
            series = [w["signals"][name] for w in windows if w["signals"].get(name) is not None]
            if not series:
                table.add_row(name, "0", "", "", "", "")
                continue
            table.add_row(
                name,
                str(len(series)),
                *(_number(v) for v in (series[0], series[-1], min(series), max(series))),
            )
    Console().print(table)


@app.command("records")
def records(
    model: str = typer.Argument(..., help="The model."),
    last: int = typer.Option(20, "--last", min=1, max=10_000, help="How many of the newest."),
    as_json: bool = JSON_OPTION,
    data_dir: Path = DATA_DIR,
    database_url: str = DATABASE_URL,
) -> None:
    """A model's newest prediction records as stored (features, prediction, scores, label,
    latency, error, who served it), newest first: what the model was really sent."""
    from mlwarden.clock import as_utc

    with _errors(), _open_store(data_dir, database_url) as store:
        rows = store.records_by_arrival(model, newest_first=True, limit=last)
    out = [
        {
            "id": r["id"],
            "timestamp": as_utc(r["timestamp"]).isoformat(),
            "received_at": as_utc(r["received_at"]).isoformat(),
            "version": r["version"],
            "served_by": r["served_by"],
            "features": r["features"],
            "prediction": r["prediction"],
            "scores": r["scores"],
            "label": r["label"],
            "latency_ms": r["latency_ms"],
            "error": r["error"],
        }
        for r in rows
    ]
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{model}: the newest {len(out)} records")
    for column in ("id", "timestamp", "version", "served_by", "prediction", "label", "error"):
        table.add_column(column)
    table.add_column("features", overflow="fold")
    for r in out:
        table.add_row(
            r["id"],
            r["timestamp"][:19],
            "" if r["version"] is None else str(r["version"]),
            r["served_by"],
            json.dumps(r["prediction"]),
            "" if r["label"] is None else json.dumps(r["label"]),
            r["error"] or "",
            json.dumps(r["features"], default=str),
        )
    Console().print(table)


@app.command("deployments")
def deployments(
    model: str = typer.Argument(..., help="The model."),
    env: str = typer.Option("production", "--env", help="production or staging."),
    last: int = typer.Option(20, "--last", min=1, help="How many revisions, newest first."),
    as_json: bool = JSON_OPTION,
    data_dir: Path = DATA_DIR,
    database_url: str = DATABASE_URL,
) -> None:
    """A model's deployment revisions, newest first: which version went live, fell back,
    canaried or shadowed when, by whom and why (people and the agent alike)."""
    with _errors(), _open_store(data_dir, database_url) as store:
        revisions = store.deployment_history(model, env, limit=last)
    out = [
        {
            "revision": d.revision,
            "created_at": d.created_at.isoformat(),
            "live_version": d.live_version,
            "fallback_version": d.fallback_version,
            "canary_version": d.canary_version,
            "canary_weight": d.canary_weight,
            "shadow_version": d.shadow_version,
            "disabled": d.disabled,
            "input_repair": sorted(d.input_repair),
            "actor": d.actor,
            "reason": d.reason,
        }
        for d in revisions
    ]
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{model} ({env}): {len(out)} revisions, newest first")
    columns = ("revision", "created_at", "live", "fallback", "canary", "shadow", "actor", "reason")
    for column in columns:
        table.add_column(column, overflow="fold")
    for d in out:
        canary = (
            "" if d["canary_version"] is None else f"v{d['canary_version']} {d['canary_weight']:g}"
        )
        live = "disabled" if d["disabled"] else _version(d["live_version"])
        if d["input_repair"]:
            live += f" (repairing {', '.join(d['input_repair'])})"
        table.add_row(
            str(d["revision"]),
            d["created_at"][:19],
            live,
            _version(d["fallback_version"]),
            canary,
            _version(d["shadow_version"]),
            d["actor"],
            d["reason"],
        )
    Console().print(table)


def _version(number: int | None) -> str:
    return "" if number is None else f"v{number}"
