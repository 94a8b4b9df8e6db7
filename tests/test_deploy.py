"""The files of deploy/ (docs/deploy.md) run commands the CLI has and settings it knows.

Docker Compose, systemd and a Docker daemon are not needed: each file is parsed and what it
runs is checked against the real command line and settings; the image is built only where a
Docker daemon answers (``docker info``), and that test is skipped elsewhere, saying so.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from mlwarden.cli.main import app
from mlwarden.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
# every file of deploy/ and the test of this module that exercises it
EXERCISED = {
    "Dockerfile": "test_dockerfile_installs_the_package_and_runs_serve_as_non_root",
    "Dockerfile.dockerignore": "test_the_image_context_holds_what_the_install_needs",
    "compose.yaml": "test_compose_runs_two_replicas_on_postgres_and_prometheus",
    "prometheus/prometheus.yml": "test_prometheus_scrapes_every_replica",
    "systemd/mlwarden.service": "test_systemd_unit_runs_serve_with_known_settings",
    "systemd/mlwarden.env.example": "test_systemd_unit_runs_serve_with_known_settings",
}


def parses(argv: list[str]) -> None:
    """``mlwarden <argv>`` is a command the CLI takes, with options it knows (not run)."""
    command: Any = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="mlwarden")
    while hasattr(command, "resolve_command"):  # a group: down to its command
        name, command, argv = command.resolve_command(ctx, list(argv))
        assert command is not None, f"no command {name!r}"
        ctx = command.context_class(command, info_name=name, parent=ctx)
    command.make_context(ctx.info_name, list(argv), parent=ctx.parent).close()


def known_settings(names: list[str]) -> None:
    fields = {f"MLWARDEN_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(set(names) - fields)
    assert not unknown, f"settings mlwarden does not have: {unknown}"


def test_every_deploy_file_is_exercised_and_documented() -> None:
    files = sorted(str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*") if p.is_file())
    assert files == sorted(EXERCISED)
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for name in files:
        assert f"deploy/{name}" in guide, f"docs/deploy.md does not mention deploy/{name}"
    for test in set(EXERCISED.values()):
        assert test in globals()


def test_parses_refuses_what_the_cli_does_not_have() -> None:
    parses(["serve", "--workers", "2"])
    parses(["tokens", "create", "ci", "--role", "operator"])
    for argv in (["serve", "--no-such-option"], ["no-such-command"], ["serve", "--workers", "x"]):
        with pytest.raises(Exception):  # noqa: B017 - click's usage errors, whichever applies
            parses(argv)


def test_compose_runs_two_replicas_on_postgres_and_prometheus() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "replica-1", "replica-2", "prometheus"}
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("replica-1", "replica-2"):
        replica = services[name]
        parses(replica["command"])
        environment = replica["environment"]
        known_settings(list(environment))
        assert environment["MLWARDEN_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in environment["MLWARDEN_DATABASE_URL"]
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert replica["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY / replica["build"]["context"] / replica["build"]["dockerfile"]).is_file()
    # each replica keeps its own data folder (its record journal), never a shared one
    volumes = [services[n]["volumes"][0].split(":")[0] for n in ("replica-1", "replica-2")]
    assert len(set(volumes)) == 2
    mounted = services["prometheus"]["volumes"][0].split(":")[0]
    assert (DEPLOY / mounted).resolve() == DEPLOY / "prometheus" / "prometheus.yml"


def test_prometheus_scrapes_every_replica() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    targets = job["static_configs"][0]["targets"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    replicas = [name for name in compose["services"] if name.startswith("replica-")]
    assert sorted(targets) == sorted(f"{name}:8000" for name in replicas)
    from mlwarden.api import routes_system

    assert "/metrics" in {getattr(route, "path", None) for route in routes_system.router.routes}


def test_systemd_unit_runs_serve_with_known_settings() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "mlwarden.service")
    service = unit["Service"]
    binary, *argv = shlex.split(service["ExecStart"])
    assert binary == "/opt/mlwarden/bin/mlwarden"
    parses(argv)
    assert service["User"] == "mlwarden" and service["Restart"] == "always"
    assert service["KillSignal"] == "SIGTERM"
    name, _, _value = service["Environment"].partition("=")
    known_settings([name])
    assert service["EnvironmentFile"] == "/etc/mlwarden/mlwarden.env"
    example = (DEPLOY / "systemd" / "mlwarden.env.example").read_text().splitlines()
    known_settings([line.split("=")[0] for line in example if line and not line.startswith("#")])
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split by stage."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_dockerfile_installs_the_package_and_runs_serve_as_non_root() -> None:
    build, run = dockerfile_stages()
    assert build[0].endswith(" AS build")
    # the README's install: the project with pip, into a virtual environment the run stage takes
    assert any(re.search(r"pip install .*\s\.$", line) for line in build)
    assert "COPY --from=build /opt/mlwarden /opt/mlwarden" in run
    users = [line.split()[1] for line in run if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    entrypoint = next(line for line in run if line.startswith("ENTRYPOINT "))
    command = next(line for line in run if line.startswith("CMD "))
    assert yaml.safe_load(entrypoint.split(" ", 1)[1]) == ["mlwarden"]
    parses(yaml.safe_load(command.split(" ", 1)[1]))
    known_settings([word.split("=")[0] for line in run if line.startswith("ENV ")
                    for word in line.split()[1:] if word.startswith("MLWARDEN_")])


def test_the_image_context_holds_what_the_install_needs() -> None:
    """The build context keeps pyproject.toml, README.md and src/, and pip install . ships
    every data file of the package (templates, policies, datasets…), which the image needs."""
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    rules = [r for r in ignore if r and not r.startswith("#")]
    assert rules[0] == "*" and {"!pyproject.toml", "!README.md", "!src/"} <= set(rules)
    copied = [line.split()[1:-1] for stage in dockerfile_stages() for line in stage
              if line.startswith("COPY ") and "--from" not in line]
    assert all((ROOT / p).exists() for paths in copied for p in paths)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = project["tool"]["setuptools"]["package-data"]["mlwarden"]
    package = ROOT / "src" / "mlwarden"
    missing = [
        str(path.relative_to(package)) for path in package.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in
        path.parts and not any(fnmatch.fnmatch(str(path.relative_to(package)), g) for g in globs)
    ]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def docker_daemon() -> str | None:
    """Why the image cannot be built here, or None when a Docker daemon answers."""
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return f"no Docker daemon reachable: {done.stderr.strip().splitlines()[-1]}"
    return None


@pytest.mark.slow
def test_the_image_builds_and_runs_as_non_root() -> None:
    reason = docker_daemon()
    if reason is not None:
        pytest.skip(reason)  # the one skip allowed: a build needs a daemon
    tag = "mlwarden:test-deploy"
    subprocess.run(["docker", "build", "-f", "deploy/Dockerfile", "-t", tag, "."], cwd=ROOT,
                   check=True, timeout=1800)
    who = subprocess.run(["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"],
                         capture_output=True, text=True, check=True, timeout=120)
    assert who.stdout.strip() != "0"
    usage = subprocess.run(["docker", "run", "--rm", tag, "serve", "--help"],
                           capture_output=True, text=True, check=True, timeout=300)
    assert "--workers" in usage.stdout
