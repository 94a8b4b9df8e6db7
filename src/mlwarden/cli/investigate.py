"""``mlwarden investigate URL``: analyse a model known only by its URL, in one call.

The command runs the investigation in its own process (``agent.investigate``, the same job
``POST /v1/investigations`` runs in the server) and records it in the store of ``--data-dir``
or ``--database-url``: probes (rows from ``--sample``, or the reference sample of the
registered version at that URL), the baseline from the first probes, windows judged by the
monitor, the diagnosis by the playbooks, recommendations and the incident report. Rich progress
bars on stderr while it runs; ``--json`` prints the stored investigation on stdout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlwarden.cli.app import app
from mlwarden.cli.serve import _errors, _open_store, _settings
from mlwarden.errors import MlwardenError

if TYPE_CHECKING:
    from mlwarden.agent.investigate import InvestigationProgress
    from mlwarden.store import Store

JSON_OPTION = typer.Option(False, "--json", help="Print the investigation as JSON on stdout.")


def _pairs(values: list[str], separator: str, option: str) -> dict[str, str]:
    """``NAME<separator>VALUE`` options as a dict."""
    pairs = {}
    for value in values:
        name, sep, text = value.partition(separator)
        if not sep or not name.strip():
            raise typer.BadParameter(f"{value!r} is not NAME{separator}VALUE", param_hint=option)
        pairs[name.strip()] = text.strip()
    return pairs


def _headers(values: list[str]) -> dict[str, str]:
    return _pairs(values, ":", "--header")


@app.command("investigate")
def investigate(
    url: str = typer.Argument(..., help="The model's prediction endpoint (http or https)."),
    sample: Path = typer.Option(
        None,
        "--sample",
        help="Rows to send: CSV, TSV, Parquet, JSON or JSON lines. Default: the reference "
        "sample of the registered version whose endpoint is URL.",
    ),
    target: str = typer.Option(
        None, "--target", help="A column of the sample held back as each probe's label."
    ),
    protocol: str = typer.Option("json", "--protocol", help="json (generic) or v2 (KServe)."),
    header: list[str] = typer.Option(
        [], "--header", "-H", help="NAME:VALUE sent with every probe; repeatable."
    ),
    fields: list[str] = typer.Option(
        [],
        "--field",
        help="The response field mapping, FIELD=PATH, for an answer shape mlwarden does not "
        "read by itself: predictions (dotted path to the answers), prediction, confidence, "
        "probabilities (paths inside an answer); repeatable.",
    ),
    baseline: int = typer.Option(200, "--baseline", help="Probes that learn the baseline."),
    windows: int = typer.Option(3, "--windows", help="Windows judged after the baseline."),
    window_size: int = typer.Option(100, "--window-size", help="Probes per window."),
    rate: float = typer.Option(50.0, "--rate", help="Probes per second, at most."),
    timeout_ms: float = typer.Option(2000.0, "--timeout-ms", help="Timeout of each probe."),
    report: Path = typer.Option(
        None, "--report", help="Write the incident report there (.md or .html)."
    ),
    as_json: bool = JSON_OPTION,
    data_dir: Path = typer.Option(None, "--data-dir", help="Folder of the SQLite database."),
    database_url: str = typer.Option(None, "--database-url", help="SQLAlchemy URL."),
) -> None:
    """Probe a model by its URL, learn its baseline from the first answers, keep probing while
    the monitor watches (drift, confidence and prediction collapse, errors, latency), diagnose
    the root cause and recommend what to do, in one call.

    Exit status 0: the investigation ran to its end, with an incident or without.

    Exit status 1: it could not (bad input, an unreachable endpoint, unreadable answers).
    """
    from mlwarden.agent.investigate import (
        InvestigationRequest,
        rows_from_file,
        run_investigation,
    )

    console = Console(stderr=True)
    if report is not None and report.suffix.lower() not in (".md", ".html", ".htm"):
        raise typer.BadParameter("the report is .md or .html", param_hint="--report")
    with _errors():
        rows = rows_from_file(sample) if sample is not None else None
        request = InvestigationRequest(
            url=url,
            rows=rows,
            target=target,
            protocol=protocol,
            headers=_headers(header),
            response=_pairs(fields, "=", "--field"),
            baseline=baseline,
            windows=windows,
            window_size=window_size,
            rate_per_s=rate,
            timeout_ms=timeout_ms,
        )
        request.check()
        settings = _settings(data_dir=data_dir, database_url=database_url)
        with (
            _open_store(data_dir, database_url) as store,
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TimeElapsedColumn(),
                console=console,
                transient=as_json,
            ) as progress,
        ):
            probes = progress.add_task("probes", total=request.total_probes, note="")
            judged = progress.add_task("windows", total=request.windows, note="")

            def show(state: InvestigationProgress) -> None:
                p = state.as_dict()
                errors = f"{p['errors']} failed" if p["errors"] else ""
                progress.update(probes, completed=p["done"], note=errors)
                progress.update(
                    judged,
                    completed=max(0, p["window"] - (p["stage"] == "monitoring")),
                    note=p["stage"],
                )

            try:
                record = run_investigation(
                    store, request, actor="cli", settings=settings, on_progress=show
                )
            except MlwardenError as exc:
                progress.stop()
                _failed(console, store, exc, as_json)
            progress.update(judged, completed=request.windows, note="done")
    result = record["result"] or {}
    if report is not None and result.get("diagnosis"):
        from mlwarden.diagnose.incident import IncidentDiagnosis

        diagnosis = IncidentDiagnosis.model_validate(result["diagnosis"])
        text = diagnosis.to_markdown() if report.suffix.lower() == ".md" else diagnosis.to_html()
        report.write_text(text)
    if as_json:
        typer.echo(json.dumps(record, default=str))
        return
    _print(console, record, report)


def _failed(console: Console, store: Store, exc: MlwardenError, as_json: bool) -> NoReturn:
    """Say why the investigation stopped, and where what it collected is kept."""
    investigation = exc.detail.get("investigation")
    console.print(f"[red]error:[/red] {escape(exc.message)}")
    if investigation is not None:
        from mlwarden.store.investigations import InvestigationRepo

        record = InvestigationRepo(store).get(investigation)
        console.print(
            f"investigation {investigation} failed after {record['progress'].get('done', 0)} "
            "probes; what it collected is kept in the store "
            f"(GET /v1/investigations/{investigation} on a server of this store)"
        )
        if as_json:
            typer.echo(json.dumps(record, default=str))
    raise typer.Exit(1)


def _print(console: Console, record: dict, report: Path | None) -> None:
    out = Console()
    result = record["result"] or {}
    base = result.get("baseline") or {}
    out.print(f"[bold]investigation {record['id']}[/bold]: {escape(record['url'])}")
    registered = result.get("registered")
    if registered:
        out.print(f"registered model {registered['model']!r}, version {registered['version']}")
    out.print(
        f"baseline: {base.get('probes')} probes, {base.get('errors')} failed, latency p50 "
        f"{_ms(base.get('latency_p50_ms'))} / p99 {_ms(base.get('latency_p99_ms'))}"
        + (
            f", confidence {base['confidence_mean']:.2f} ± {base['confidence_std']:.2f}"
            if base.get("confidence_mean") is not None and base.get("confidence_std") is not None
            else ""
        )
    )
    table = Table("window", "probes", "failed", "findings")
    for window in result.get("windows", []):
        found = "; ".join(f["message"] for f in window["findings"]) or "-"
        table.add_row(str(window["window"]), str(window["n"]), str(window["errors"]), found)
    out.print(table)
    colour = "red" if result.get("incident") else "green"
    out.print(f"[{colour}]{escape(result.get('summary', ''))}[/{colour}]")
    cause = result.get("root_cause")
    if cause:
        out.print(f"root cause: {cause['title']} (confidence {cause['confidence']:.2f})")
    for item in result.get("recommendations", []):
        out.print(f"- {item['action']}: {escape(item['description'])}")
    if report is not None and result.get("diagnosis"):
        out.print(f"wrote {report}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
