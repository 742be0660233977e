"""The alert rules pass ``promtool``: they parse, and their unit tests
(docker/prometheus/alerts.test.yml) fire each alert on the series it is meant for and keep it
quiet on a healthy fleet."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.deploy_support import ALERTS

HOW_TO = "promtool is not installed; install it with: apt-get install -y prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if IN_CI:
            pytest.fail(HOW_TO)
        pytest.skip(HOW_TO)
    return found


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=ALERTS.parent, text=True, capture_output=True, timeout=120
    )


def test_rules_are_valid(promtool: str) -> None:
    out = run(promtool, "check", "rules", ALERTS.name)
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheus_config_is_valid(promtool: str, tmp_path: Path) -> None:
    """The compose stack's prometheus.yml, with its rule file where compose mounts it."""
    text = (ALERTS.parent / "prometheus.yml").read_text()
    assert "/etc/prometheus/alerts.yml" in text
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/alerts.yml", str(ALERTS)))
    out = run(promtool, "check", "config", str(config))
    assert out.returncode == 0, out.stdout + out.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    out = run(promtool, "test", "rules", "alerts.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
