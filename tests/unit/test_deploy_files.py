"""The deployment files hold together without a Docker engine: the compose stack runs only real
``cicfleet`` commands with settings that exist, every file it mounts or copies is there, images
run as non-root with a health check, Prometheus and nginx point at the compose services, and
every alert has a runbook section."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest

from agent.node_agent import AgentConfig
from api.cli import main
from fleet.settings import Settings
from tests.deploy_support import (
    COMPOSE,
    CONTROL_PLANE_DOCKERFILE,
    DOCKER,
    ROOT,
    alert_rules,
    compose,
    control_plane_services,
    dashboard_files,
    environment,
    interpolate,
)

DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))


def resolve_cicfleet(args: list[str]) -> click.Command:
    """The command ``cicfleet *args`` runs; raises click's UsageError for a bad command or
    option, exactly as the CLI would, without running it."""
    cmd: click.Command = main
    ctx: click.Context | None = None
    name = "cicfleet"
    rest = list(args)
    while isinstance(cmd, click.Group):
        ctx = cmd.make_context(name, rest, parent=ctx)
        rest = [*ctx.protected_args, *ctx.args]
        if not rest:
            return cmd
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        cmd = sub
    cmd.make_context(name, rest, parent=ctx)  # parses options and arguments
    return cmd


def test_resolver_refuses_what_the_cli_refuses() -> None:
    assert resolve_cicfleet(["db", "upgrade"]).name == "upgrade"
    assert resolve_cicfleet(["serve"]).name == "serve"
    with pytest.raises(click.UsageError):
        resolve_cicfleet(["db", "migrate"])
    with pytest.raises(click.UsageError):
        resolve_cicfleet(["serve", "--workers", "2"])


def _dockerfile_entrypoint(path: Path) -> tuple[list[str], list[str]]:
    text = path.read_text()
    entry = re.findall(r"^ENTRYPOINT (\[.*\])$", text, re.MULTILINE)
    cmd = re.findall(r"^CMD (\[.*\])$", text, re.MULTILINE)
    import json

    return json.loads(entry[-1]), json.loads(cmd[-1])


def test_compose_runs_only_real_cicfleet_commands() -> None:
    services = control_plane_services(compose())
    assert {"migrate", "control-plane-1", "control-plane-2"} <= set(services)
    entry, default_cmd = _dockerfile_entrypoint(ROOT / CONTROL_PLANE_DOCKERFILE)
    assert entry == ["cicfleet"]
    resolve_cicfleet(default_cmd)
    ran = {}
    for name, svc in services.items():
        command = svc.get("command", default_cmd)
        args = shlex.split(command) if isinstance(command, str) else list(command)
        assert "entrypoint" not in svc, f"{name} must run through the image's cicfleet entrypoint"
        ran[name] = resolve_cicfleet(args).name
    assert ran == {"migrate": "upgrade", "control-plane-1": "serve", "control-plane-2": "serve"}


def test_agent_image_runs_the_agent_command() -> None:
    entry, cmd = _dockerfile_entrypoint(DOCKER / "agent.Dockerfile")
    assert resolve_cicfleet([*entry[1:], *cmd]).name == "agent"


def test_compose_sets_only_settings_that_exist() -> None:
    data = compose()
    known = {f"CIC_{name.upper()}" for name in Settings.model_fields}
    agent_known = {f"CIC_AGENT_{name.upper()}" for name in AgentConfig.model_fields}
    checked = 0
    for name, svc in data["services"].items():
        for var in environment(svc):
            if var.startswith("CIC_AGENT_"):
                assert var in agent_known, f"{name} sets {var}, which the agent does not read"
            elif var.startswith("CIC_"):
                assert var in known, f"{name} sets {var}, which is not a setting"
                checked += 1
    assert checked >= 20


def test_compose_values_are_valid_settings() -> None:
    """With a filled-in .env, every replica's environment passes the settings validation."""
    env = {"POSTGRES_PASSWORD": "pw", "CIC_ADMIN_TOKEN": "t" * 32}
    for name, svc in control_plane_services(compose()).items():
        values = {k: interpolate(v, env) for k, v in environment(svc).items()}
        fields = {k.removeprefix("CIC_").lower(): v for k, v in values.items()}
        settings = Settings(**fields)  # type: ignore[arg-type]
        assert settings.effective_database_url.startswith("postgresql+asyncpg://"), name
        assert settings.redis_url == "redis://redis:6379/0", name
        assert settings.replicas == 2


def test_compose_requires_the_secrets() -> None:
    env = environment(compose()["services"]["control-plane-1"])
    with pytest.raises(KeyError, match="CIC_ADMIN_TOKEN"):
        interpolate(env["CIC_ADMIN_TOKEN"], {})
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(env["CIC_DATABASE_URL"], {})


def test_topology_migrations_once_then_replicas() -> None:
    services = compose()["services"]
    assert services["migrate"]["restart"] == "no"
    for replica in ("control-plane-1", "control-plane-2"):
        deps = services[replica]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
    assert "serve" not in services["migrate"]["command"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"


def test_every_long_running_service_has_a_health_check() -> None:
    for name, svc in compose()["services"].items():
        check = svc.get("healthcheck") or {}
        if svc.get("restart") == "no":  # one-shot job: its exit status is its health
            continue
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"


def test_each_replica_keeps_its_usage_journal_on_its_own_volume() -> None:
    data = compose()
    mounts = {}
    for name in ("control-plane-1", "control-plane-2"):
        svc = data["services"][name]
        home = environment(svc)["CIC_HOME"]
        (volume,) = [
            v.split(":")[0]
            for v in svc["volumes"]
            if v.split(":")[1] == f"{home}/usage-journal"  # the journal's default path
        ]
        assert volume in data["volumes"], f"{volume} must be a named volume"
        mounts[name] = volume
    assert len(set(mounts.values())) == 2


def test_bind_mounts_exist() -> None:
    for name, svc in compose()["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_multistage_non_root_with_health_check(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    lines = [ln.strip() for ln in text.replace("\\\n", " ").splitlines()]
    stages = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    assert all("slim" in ln or "${PYTHON_IMAGE}" in ln for ln in stages)
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in lines
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "must run as non-root"
    assert any(ln.startswith("HEALTHCHECK ") for ln in lines)
    for ln in lines:
        if ln.startswith("COPY ") and "--from=" not in ln:
            *sources, _dest = ln.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY source {source} missing"
                assert not _docker_ignored(source), f"COPY source {source} is in .dockerignore"


def _docker_ignored(source: str) -> bool:
    patterns = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    return source.rstrip("/") in patterns


def test_control_plane_image_takes_the_skypilot_extra_as_build_argument() -> None:
    text = (ROOT / CONTROL_PLANE_DOCKERFILE).read_text()
    assert 'ARG EXTRAS=""' in text
    assert '".${EXTRAS:+[$EXTRAS]}"' in text
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    build_arg = compose()["x-control-plane"]["build"]["args"]["EXTRAS"]
    assert interpolate(build_arg, {}) in extras


def test_prometheus_scrapes_each_replica_and_loads_the_rules() -> None:
    import yaml

    data = compose()
    prom = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "cicfleet"]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    replicas = {
        f"{name}:{environment(svc)['CIC_PORT']}"
        for name, svc in control_plane_services(data).items()
        if svc["command"] == ["serve"]
    }
    assert targets == replicas
    mounted = {v.split(":")[1] for v in data["services"]["prometheus"]["volumes"]}
    assert set(prom["rule_files"]) <= mounted


def test_nginx_balances_over_the_replicas_without_buffering_streams() -> None:
    conf = (DOCKER / "nginx.conf").read_text()
    servers = set(re.findall(r"^\s*server (\S+?)(?: |;)", conf, re.MULTILINE))
    assert servers == {"control-plane-1:8080", "control-plane-2:8080"}
    assert "proxy_buffering off;" in conf


def test_grafana_provisions_the_dashboards_it_mounts() -> None:
    import json

    import yaml

    data = compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in data["volumes"] if v.startswith("."))
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/cicfleet.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert path in {m for m in mounts.values()}
    assert dashboard_files()
    datasources = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    uids = {d["uid"] for d in datasources}
    for f in dashboard_files():
        dash: dict[str, Any] = json.loads(f.read_text())
        assert dash["uid"] and dash["panels"]
        for panel in dash["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] in uids, panel["title"]
                assert panel["targets"], panel["title"]


def test_every_alert_has_a_runbook_section() -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", doc, re.MULTILINE)
    }
    alerts = [r for r in alert_rules() if "alert" in r]
    assert len(alerts) >= 5
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/deployment.md#"), rule["alert"]
        assert url.split("#", 1)[1] in anchors, f"{rule['alert']}: no section {url}"
