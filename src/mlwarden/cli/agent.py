"""Agent commands: agent, check, incidents, actions, approvals, audit, policy."""

from __future__ import annotations

from pathlib import Path

import typer

from mlwarden.cli.main import app

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
