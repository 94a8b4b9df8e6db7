"""``mlwarden tokens`` against a real database: the printed token authenticates once created."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mlwarden.cli.main import app
from mlwarden.domain import Role
from mlwarden.store import Store


def test_tokens_create_list_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app, ["tokens", "create", "ci", "--role", "operator", "--data-dir", str(tmp_path)]
    )
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    with Store(f"sqlite:///{tmp_path / 'mlwarden.db'}") as store:
        assert store.authenticate(token) == ("ci", Role.OPERATOR)
    listed = runner.invoke(app, ["tokens", "list", "--data-dir", str(tmp_path)])
    assert "ci\toperator\tactive" in listed.output
    again = runner.invoke(app, ["tokens", "create", "ci", "--data-dir", str(tmp_path)])
    assert again.exit_code == 1
    assert "already exists" in again.output
    revoked = runner.invoke(app, ["tokens", "revoke", "ci", "--data-dir", str(tmp_path)])
    assert revoked.exit_code == 0
    with Store(f"sqlite:///{tmp_path / 'mlwarden.db'}") as store:
        assert store.authenticate(token) is None
    assert "serve" in runner.invoke(app, ["--help"]).output
