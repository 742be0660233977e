"""The limits and plans commands against a real control plane process."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import ControlPlane

pytestmark = pytest.mark.e2e


def test_limits_and_plans_commands(control_plane: ControlPlane) -> None:
    cli = control_plane.cli
    cli("tenants", "create", "acme", "--plan", "pro")
    key = json.loads(
        cli(
            "keys",
            "create",
            "--tenant",
            "acme",
            "--rpm",
            "600",
            "--tpm",
            "200000",
            "--concurrency",
            "16",
            "--json",
        ).stdout
    )
    shown = json.loads(cli("limits", "show", "--key", key["id"], "--json").stdout)
    assert [v["layer"] for v in shown] == ["global", "tenant", "environment", "key"]
    assert shown[-1]["effective"] == {
        "rpm": 600,
        "tpm": 200000,
        "rpd": None,
        "tpd": None,
        "concurrency": 16,
    }

    env = json.loads(
        cli("limits", "set", "--tenant", "acme", "--env", "prod", "--rpd", "5000", "--json").stdout
    )
    assert env["layer"] == "environment" and env["effective"]["rpd"] == 5000
    cli("limits", "set", "--tenant", "acme", "--rpm", "unlimited", "--tpd", "inherit")
    table = cli("limits", "show", "--tenant", "acme").stdout
    assert "acme" in table and "pro" in table

    cli("limits", "set", "--global", "--concurrency", "1000")
    glob = json.loads(cli("limits", "show", "--global", "--json").stdout)
    assert glob[0]["effective"]["concurrency"] == 1000

    cli("plans", "set", "pro", "--rpm", "2000")
    listed = json.loads(cli("plans", "list", "--json").stdout)
    pro = next(p for p in listed if p["plan"] == "pro" and p["layer"] == "tenant")
    assert pro["rpm"] == 2000 and "enterprise" in cli("plans", "list").stdout

    bad = cli("limits", "set", "--tenant", "acme", "--rpm", "lots", check=False)
    assert bad.returncode == 2 and "'lots' is not a count" in bad.stderr
    missing = cli("limits", "show", "--tenant", "ghost", check=False)
    assert missing.returncode == 1 and "tenant 'ghost' not found (HTTP 404)" in missing.stderr
