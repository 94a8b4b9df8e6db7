"""Agent commands: agent, check, incidents, incident (acknowledge, assign, note, accept,
reopen), actions, approvals, audit, policy."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from mlwarden.cli.app import app

policy_app = typer.Typer(help="Check agent policy files.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


@policy_app.command("validate")
def policy_validate(
    file: Path = typer.Argument(..., help="The policy YAML file to check."),
) -> None:
    """Validate a policy file; print every error with its line number."""
    from mlwarden.agent.policy import validate_policy_file
    from mlwarden.errors import InvalidInput

    try:
        problems = validate_policy_file(file)
    except InvalidInput as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    if problems:
        for problem in problems:
            typer.echo(f"{file}: {problem}", err=True)
        typer.echo(f"{len(problems)} problem(s) found", err=True)
        raise typer.Exit(1)
    typer.echo(f"{file}: valid policy")


JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")
POLICY_OPTION = typer.Option(
    None, "--policy", help="Policy YAML (default: $MLWARDEN_AGENT_POLICY or the bundled one)."
)


def _store() -> Any:
    from mlwarden.settings import Settings
    from mlwarden.store.repository import Store

    return Store.from_settings(Settings())


def _policy(path: Path | None) -> Any:
    from mlwarden.agent.policy import PolicyError, configured_policy, load_policy

    try:
        return load_policy(path) if path else configured_policy()
    except PolicyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
    return typer.Exit(1)


def _print(
    rows: Sequence[Mapping[str, Any]], columns: list[str], as_json: bool, title: str
) -> None:
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


@app.command("check")
def check(
    model: list[str] | None = typer.Option(None, "--model", "-m", help="Only these models."),
    policy: Path | None = POLICY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One pass of the agent over every monitored model (for cron)."""
    from mlwarden.agent.loop import Agent

    store = _store()
    try:
        summaries = Agent(store, _policy(policy)).run_once(model or None)
    finally:
        store.close()
    _print(
        summaries, ["model", "windows", "incident", "decision", "verification"], as_json, "check"
    )


@app.command("agent")
def agent(
    interval: float = typer.Option(30.0, "--interval", help="Seconds between passes."),
    policy: Path | None = POLICY_OPTION,
) -> None:
    """Run the agent until interrupted; only one agent acts on a store (the others wait)."""
    import signal
    import threading

    from mlwarden.agent.loop import Agent
    from mlwarden.agent.mlflow_incidents import log_closed_incidents
    from mlwarden.settings import Settings

    if interval <= 0:
        typer.echo("error: --interval must be positive", err=True)
        raise typer.Exit(2)
    store = _store()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    typer.echo(f"mlwarden agent: a pass every {interval:g} s; waiting for leadership if needed")
    mlflow_runs: list[Any] = []

    def after_pass(summaries: Any) -> None:
        typer.echo(json.dumps(summaries, default=str))
        # closed incidents to MLflow, when MLFLOW_TRACKING_URI names a tracking server
        log_closed_incidents(store, mlflow_runs)

    try:
        Agent(store, _policy(policy)).run_forever(
            interval,
            stop=stop,
            on_pass=after_pass,
            lock_timeout_s=Settings().leader_lock_timeout_s,
        )
    except KeyboardInterrupt:
        stop.set()
    finally:
        store.close()


@app.command("incidents")
def incidents(
    model: str | None = typer.Option(None, "--model", "-m"),
    state: str | None = typer.Option(
        None,
        "--state",
        help="A state (open, acting, verifying, resolved…), several with commas, or 'active': "
        "every incident still worked on, as the dashboard and the assistant count open ones.",
    ),
    show: int | None = typer.Option(None, "--show", help="Show one incident in full."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Incidents, newest first (or one in full with --show ID)."""
    from mlwarden.agent.oncall import oncall_of
    from mlwarden.errors import MlwardenError
    from mlwarden.store.incidents import AgentRepo

    store = _store()
    try:
        repo = AgentRepo(store)
        if show is not None:
            full = repo.get_incident(show)
            if as_json:
                typer.echo(json.dumps(full, default=str, indent=2))
                return
            typer.echo(f"incident {full['id']} · {full['model']} · {full['state']}")
            typer.echo(f"diagnosis {full['diagnosis']} · severity {full['severity']}")
            typer.echo(_oncall_line(oncall_of(full)))
            for event in full["timeline"]:
                by = f" — {event['actor']}" if event["event"] == "note" and "actor" in event else ""
                typer.echo(f"  {event['ts'][:19]}  {event['event']:<18} {event['text']}{by}")
            return
        rows = repo.list_incidents(model, state)
    except MlwardenError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    columns = ["id", "model", "state", "diagnosis", "severity", "opened_at", "summary"]
    _print(rows, columns, as_json, "incidents")


def _oncall_line(oncall: dict[str, Any]) -> str:
    acknowledged = oncall["acknowledged"]
    assignee = oncall["assignee"]
    return (
        "acknowledged "
        + (f"by {acknowledged['by']} at {acknowledged['at'][:19]}" if acknowledged else "not yet")
        + " · assignee "
        + (assignee["name"] if assignee else "nobody")
        + f" · {len(oncall['notes'])} note(s)"
    )


incident_app = typer.Typer(
    help="What on-call people do with an incident: acknowledge, assign, note. Audited; the "
    "agent still acts on the incident per its policy.",
    no_args_is_help=True,
)
app.add_typer(incident_app, name="incident")
INCIDENT_ID = typer.Argument(..., help="The incident's id (see `mlwarden incidents`).")
ONCALL_ACTOR = typer.Option("cli", "--actor", help="Who does it (for the audit log).")


def _oncall_change(change: Any, incident_id: int, as_json: bool, **args: Any) -> None:
    """Run one on-call change against the store, as an operator (the command line has local
    access to the store), and print the incident's on-call state."""
    from mlwarden.errors import MlwardenError

    store = _store()
    try:
        oncall = change(store, incident_id, **args)
    except MlwardenError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(oncall, default=str, indent=2))
        return
    typer.echo(f"incident {incident_id} ({oncall['state']}): {_oncall_line(oncall)}")


@incident_app.command("acknowledge")
def incident_acknowledge(
    incident_id: int = INCIDENT_ID, actor: str = ONCALL_ACTOR, as_json: bool = JSON_OPTION
) -> None:
    """Acknowledge an open incident: you are on it (a closed one cannot be acknowledged)."""
    from mlwarden.agent.oncall import acknowledge

    _oncall_change(acknowledge, incident_id, as_json, actor=actor)


@incident_app.command("assign")
def incident_assign(
    incident_id: int = INCIDENT_ID,
    assignee: str = typer.Argument(..., help="Who owns the incident from now on."),
    actor: str = ONCALL_ACTOR,
    as_json: bool = JSON_OPTION,
) -> None:
    """Assign an incident to a person (closed ones too: the follow-up)."""
    from mlwarden.agent.oncall import assign

    _oncall_change(assign, incident_id, as_json, assignee=assignee, actor=actor)


@incident_app.command("note")
def incident_note(
    incident_id: int = INCIDENT_ID,
    text: str = typer.Argument(..., help="The note (what you found, what you did)."),
    actor: str = ONCALL_ACTOR,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a note to an incident's timeline (closed ones too: the post-mortem)."""
    from mlwarden.agent.oncall import annotate

    _oncall_change(annotate, incident_id, as_json, text=text, actor=actor)


@incident_app.command("accept")
def incident_accept(
    incident_id: int = INCIDENT_ID,
    reason: str = typer.Argument(..., help="Why the drift is the new normal."),
    actor: str = ONCALL_ACTOR,
    as_json: bool = JSON_OPTION,
) -> None:
    """Accept an open drift incident's drift: the agent stops working on it, and it absorbs
    only that drift (undo with `mlwarden incident reopen`)."""
    from mlwarden.agent.oncall import accept

    _oncall_change(accept, incident_id, as_json, reason=reason, actor=actor)


@incident_app.command("reopen")
def incident_reopen(
    incident_id: int = INCIDENT_ID,
    reason: str = typer.Argument(..., help="Why the accepted drift needs work again."),
    actor: str = ONCALL_ACTOR,
    as_json: bool = JSON_OPTION,
) -> None:
    """Undo an acceptance: the agent works on the incident again."""
    from mlwarden.agent.oncall import reopen

    _oncall_change(reopen, incident_id, as_json, reason=reason, actor=actor)


actions_app = typer.Typer(help="The agent's action journal.", no_args_is_help=True)
app.add_typer(actions_app, name="actions")


@actions_app.command("list")
def actions_list(
    model: str | None = typer.Option(None, "--model", "-m"),
    state: str | None = typer.Option(None, "--state"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Journaled actions, newest first."""
    from mlwarden.store.journal import ActionJournal

    store = _store()
    try:
        rows = ActionJournal(store).list(model=model, state=state)
    finally:
        store.close()
    columns = [
        "id",
        "model",
        "kind",
        "state",
        "before_revision",
        "after_revision",
        "actor",
        "error",
    ]
    _print(rows, columns, as_json, "actions")


@actions_app.command("undo")
def actions_undo(
    action_id: int = typer.Argument(..., help="The action to undo."),
    force: bool = typer.Option(False, "--force", help="Undo even if the deployment changed since."),
    actor: str = typer.Option("cli", "--actor", help="Who undoes it (for the audit log)."),
) -> None:
    """Undo a done action: the deployment goes back to the revision before it."""
    from mlwarden.agent.operations.service import Operations
    from mlwarden.errors import MlwardenError

    store = _store()
    try:
        # with the configured policy (MLWARDEN_AGENT_POLICY), as the agent and the API
        row = Operations(store, actor=actor).undo_action(action_id, force=force)
        model = row["model"]
    except MlwardenError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    typer.echo(
        f"action {action_id} undone: {model} is back at its revision {row['before_revision']}"
    )


approvals_app = typer.Typer(help="Actions waiting for an operator.", no_args_is_help=True)
app.add_typer(approvals_app, name="approvals")


@approvals_app.command("list")
def approvals_list(
    state: str | None = typer.Option(
        None, "--state", help="pending, approved, rejected, expired or withdrawn"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Approval requests, newest first."""
    from mlwarden.errors import MlwardenError
    from mlwarden.store.approvals import Approvals

    store = _store()
    try:
        rows = Approvals(store).list(state)
    except MlwardenError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    columns = [
        "id",
        "model",
        "action",
        "state",
        "requested_at",
        "expires_at",
        "decided_by",
        "reason",
    ]
    _print(rows, columns, as_json, "approvals")


def _answer(approval_id: int, reason: str, actor: str, approve: bool) -> None:
    from mlwarden.agent.operations.service import Operations
    from mlwarden.domain import Role
    from mlwarden.errors import MlwardenError

    store = _store()
    try:
        ops = Operations(store, actor=actor)  # recorded only: the agent runs the action
        # the command line runs with local access to the store: it acts as an operator
        if approve:
            approved = ops.approve(approval_id, role=Role.OPERATOR, reason=reason)
            extra = f"; action {approved['action_id']} journaled"
        else:
            ops.reject(approval_id, role=Role.OPERATOR, reason=reason)
            extra = ""
    except MlwardenError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    verb = "approved" if approve else "rejected"
    typer.echo(f"approval {approval_id} {verb}{extra}")


REASON = typer.Option(..., "--reason", help="Why (kept in the audit log).")
ACTOR = typer.Option("cli", "--actor", help="Who answers (for the audit log).")


@approvals_app.command("approve")
def approvals_approve(approval_id: int, reason: str = REASON, actor: str = ACTOR) -> None:
    """Approve a pending action; the agent runs it on its next pass."""
    _answer(approval_id, reason, actor, True)


@approvals_app.command("reject")
def approvals_reject(approval_id: int, reason: str = REASON, actor: str = ACTOR) -> None:
    """Reject a pending action."""
    _answer(approval_id, reason, actor, False)


audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit hash chain; exit 1 if an entry was changed or removed."""
    store = _store()
    try:
        ok, bad = store.verify_audit()
        count = len(store.audit_entries(limit=None))
    finally:
        store.close()
    if not ok:
        typer.echo(f"audit log TAMPERED: the chain breaks at entry {bad}", err=True)
        raise typer.Exit(1)
    typer.echo(f"audit log intact: {count} entries, hash chain verified")


@audit_app.command("export")
def audit_export(
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
) -> None:
    """Export the audit log as JSON lines, oldest first."""
    store = _store()
    try:
        entries = list(reversed(store.audit_entries(limit=None)))
    finally:
        store.close()
    lines = "".join(json.dumps(e, default=str, sort_keys=True) + "\n" for e in entries)
    if output is None:
        typer.echo(lines, nl=False)
    else:
        output.write_text(lines, encoding="utf-8")
        typer.echo(f"{len(entries)} entries written to {output}")
