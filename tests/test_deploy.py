"""The files of deploy/ (docs/deploy.md) run commands the CLI has and settings it knows.

Docker Compose, systemd and a Docker daemon are not needed: each file is parsed and what it
runs is checked against the real command line and settings; the image is built only where a
Docker daemon answers (``docker info``), and that test is skipped elsewhere, saying so.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mlwarden.cli.main import app
from mlwarden.domain import FeatureSpec, ModelSpec, Task
from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer, free_port
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store.incidents import AgentRepo

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
# every file of deploy/ and the test of this module that exercises it
EXERCISED = {
    "Dockerfile": "test_dockerfile_installs_the_package_and_runs_serve_as_non_root",
    "Dockerfile.dockerignore": "test_the_image_context_holds_what_the_install_needs",
    "compose.yaml": "test_compose_runs_two_replicas_on_postgres_and_prometheus",
    "prometheus/prometheus.yml": "test_prometheus_scrapes_every_replica",
    "prometheus/rules.yml": "test_rules_and_dashboard_use_only_metrics_the_server_exports",
    "grafana/mlwarden.json": "test_rules_and_dashboard_use_only_metrics_the_server_exports",
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
    mounted = [volume.split(":") for volume in services["prometheus"]["volumes"]]
    assert {(DEPLOY / local).resolve(): inside for local, inside, _ in mounted} == {
        DEPLOY / "prometheus" / "prometheus.yml": "/etc/prometheus/prometheus.yml",
        # prometheus.yml names its rule file relative to itself
        DEPLOY / "prometheus" / "rules.yml": "/etc/prometheus/rules.yml",
    }


def test_prometheus_scrapes_every_replica() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    targets = job["static_configs"][0]["targets"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    replicas = [name for name in compose["services"] if name.startswith("replica-")]
    assert sorted(targets) == sorted(f"{name}:8000" for name in replicas)
    assert config["rule_files"] == ["rules.yml"]
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
    known_settings(
        [
            word.split("=")[0]
            for line in run
            if line.startswith("ENV ")
            for word in line.split()[1:]
            if word.startswith("MLWARDEN_")
        ]
    )


def test_the_image_context_holds_what_the_install_needs() -> None:
    """The build context keeps pyproject.toml, README.md and src/, and pip install . ships
    every data file of the package (templates, policies, datasets…), which the image needs."""
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    rules = [r for r in ignore if r and not r.startswith("#")]
    assert rules[0] == "*" and {"!pyproject.toml", "!README.md", "!src/"} <= set(rules)
    copied = [
        line.split()[1:-1]
        for stage in dockerfile_stages()
        for line in stage
        if line.startswith("COPY ") and "--from" not in line
    ]
    assert all((ROOT / p).exists() for paths in copied for p in paths)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = project["tool"]["setuptools"]["package-data"]["mlwarden"]
    package = ROOT / "src" / "mlwarden"
    missing = [
        str(path.relative_to(package))
        for path in package.rglob("*")
        if path.is_file()
        and path.suffix not in {".py", ".pyc"}
        and "__pycache__" not in path.parts
        and not any(fnmatch.fnmatch(str(path.relative_to(package)), g) for g in globs)
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
    subprocess.run(
        ["docker", "build", "-f", "deploy/Dockerfile", "-t", tag, "."],
        cwd=ROOT,
        check=True,
        timeout=1800,
    )
    who = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert who.stdout.strip() != "0"
    usage = subprocess.run(
        ["docker", "run", "--rm", tag, "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "--workers" in usage.stdout


# ---------------------------------------------------------------- Prometheus rules, Grafana board

RULES = DEPLOY / "prometheus" / "rules.yml"
BOARD = DEPLOY / "grafana" / "mlwarden.json"
# words of PromQL that are not series names (functions are told by the "(" after them)
_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "e", "inf", "nan"}
# the one series a rule reads that mlwarden does not export: Prometheus's own, per target
PROMETHEUS_SERIES = {"up"}


def series_in(expr: str) -> set[str]:
    """The series names a PromQL expression reads (its label matchers, ranges, grouping
    clauses, strings, numbers, functions and operators left out)."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", expr)
    return {name for name in names if name.lower() not in _PROMQL_WORDS}


def used_series() -> dict[str, set[str]]:
    """The series each shipped file reads: the rules' expressions, the board's panel queries
    and its template variables' ``label_values(series, label)``."""
    rules = yaml.safe_load(RULES.read_text())
    board = json.loads(BOARD.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    queries = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    variables = [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return {
        "rules.yml": set().union(*map(series_in, exprs)),
        "mlwarden.json": set()
        .union(*map(series_in, queries))
        .union(*(re.findall(r"label_values\((\w+)", v) for v in variables)),
    }


def exported_series(text: str) -> set[str]:
    """The series names a scrape offers: each family's samples, and for a labelled counter or
    histogram no call has touched yet, the names its samples will have."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def test_series_in_reads_names_not_labels_functions_or_keywords() -> None:
    assert series_in(
        'histogram_quantile(0.99, sum by (model, le) (rate(a_bucket{model=~"x|y"}[5m]))) > 1'
    ) == {"a_bucket"}
    assert series_in("time() - max by (model) (b) > 6 * 3600 and on (model) c offset 1h") == {
        "b",
        "c",
    }
    assert series_in('up{job="mlwarden"} == 0') == {"up"}


@pytest.fixture(scope="module")
def running_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    """A real mlwarden server (Uvicorn, SQLite) with one model registered."""
    folder = tmp_path_factory.mktemp("metrics")
    settings = Settings(
        data_dir=folder / "data",
        database_url=f"sqlite:///{folder / 'mlwarden.db'}",
        write_flush_interval_s=0.05,
    )
    store = Store(settings.resolved_database_url)
    store.create_model(
        ModelSpec(
            name="churn",
            task=Task.CLASSIFICATION,
            features=[FeatureSpec(name="age")],
            target="churned",
            positive_class=1,
        )
    )
    try:
        with BackgroundServer(create_app(settings, store)) as server:
            yield server.url, store
    finally:
        store.close()


def test_rules_and_dashboard_use_only_metrics_the_server_exports(
    running_server: tuple[str, Store],
) -> None:
    url, _store = running_server
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200
    exported = exported_series(response.text)
    for name, used in used_series().items():
        assert used, f"{name} reads no series"
        missing = sorted(used - exported - PROMETHEUS_SERIES)
        assert not missing, f"{name} reads series /metrics does not export: {missing}"
    # the board reads nothing from Prometheus itself
    assert not used_series()["mlwarden.json"] & PROMETHEUS_SERIES
    # and every rule is an alert with a summary people read
    board = json.loads(BOARD.read_text())
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["alert"].startswith("Mlwarden") and rule["annotations"]["summary"]


def prometheus_binary(name: str) -> str:
    """Debian's ``prometheus`` package (scripts/test-services.sh installs it)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is missing: apt-get install -y prometheus (scripts/test-services.sh "
            "does it as root), or leave these cases out: -m 'not prometheus'"
        )
    return path


@pytest.mark.prometheus
def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    promtool = prometheus_binary("promtool")
    rules = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    count = sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    assert f"SUCCESS: {count} rules found" in rules.stdout
    # the scrape config, and through its rule_files the rules again, as Prometheus loads them
    config = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout


@pytest.mark.prometheus
@pytest.mark.slow  # about 7 s: Prometheus starts, scrapes and evaluates every second
def test_prometheus_scrapes_a_running_server_and_fires_the_escalation_rule(
    running_server: tuple[str, Store], tmp_path: Path
) -> None:
    """Debian's Prometheus, with the shipped rules, scrapes a real server: an incident the
    agent escalated fires ``MlwardenIncidentEscalated`` for its model, and the Grafana board's
    queries run on what it scraped."""
    binary = prometheus_binary("prometheus")
    url, store = running_server
    repo = AgentRepo(store)
    incident = repo.create_incident("churn", 3, {}, "accuracy fell and retraining did not help")
    repo.update_incident(incident, state="escalated", severity="high")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "mlwarden",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [url.removeprefix("http://")]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        firing: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not firing and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                alerts = httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5).json()
            except httpx.HTTPError:
                continue  # not listening yet
            firing = [
                a
                for a in alerts["data"]["alerts"]
                if a["state"] == "firing"
                and a["labels"]["alertname"] == "MlwardenIncidentEscalated"
            ]
        assert firing, (tmp_path / "prometheus.log").read_text()[-2000:]
        (alert,) = firing
        assert alert["labels"]["model"] == "churn" and alert["labels"]["severity"] == "critical"
        summary = alert["annotations"]["summary"]
        assert summary == "1 incident(s) of model churn escalated to a human"
        # the target is up, so the rule reading Prometheus's own series stays quiet
        targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5).json()
        assert [t["health"] for t in targets["data"]["activeTargets"]] == ["up"]
        # every query of the Grafana board is PromQL this Prometheus runs (Grafana's variables
        # as "All" selects them); the escalated incident is on its tile
        board = json.loads(BOARD.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                query = target["expr"].replace("$model", ".*").replace("$signal", ".*")
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}, timeout=5
                ).json()
                assert answer["status"] == "success", (panel["title"], answer)
                if panel["title"] == "Escalated to a human":
                    assert [r["value"][1] for r in answer["data"]["result"]] == ["1"]
    finally:
        process.terminate()
        process.wait(timeout=30)
