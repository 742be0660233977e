"""The operator CLI against a real control plane process."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import ControlPlane

pytestmark = pytest.mark.e2e


def test_tenant_and_key_commands(control_plane: ControlPlane) -> None:
    tenant = json.loads(control_plane.cli("tenants", "create", "acme", "--json").stdout)
    assert tenant["id"].startswith("ten_") and tenant["name"] == "acme"

    key = json.loads(control_plane.cli("keys", "create", "--tenant", "acme", "--json").stdout)
    assert key["key"].startswith("sk-cic-")

    listed = json.loads(control_plane.cli("keys", "list", "--tenant", "acme", "--json").stdout)
    assert [k["prefix"] for k in listed] == [key["prefix"]]
    assert key["key"] not in control_plane.cli("keys", "list", "--tenant", "acme").stdout

    table = control_plane.cli("tenants", "list").stdout
    assert "acme" in table

    control_plane.cli("tenants", "suspend", "acme")
    shown = json.loads(control_plane.cli("tenants", "list", "--json").stdout)
    assert shown[0]["status"] == "suspended"

    audit = json.loads(control_plane.cli("audit", "--json").stdout)
    assert audit[0]["action"] == "tenant.suspended"


def test_cli_errors_are_one_line(control_plane: ControlPlane) -> None:
    out = control_plane.cli("keys", "create", "--tenant", "ghost", check=False)
    assert out.returncode == 1
    assert "tenant 'ghost' not found (HTTP 404)" in out.stderr


def test_models_and_static_nodes(control_plane: ControlPlane) -> None:
    control_plane.cli(
        "models",
        "add",
        "org/model-a",
        "--context-length",
        "4096",
        "--input-price",
        "0.2",
        "--output-price",
        "0.6",
    )
    node = json.loads(
        control_plane.cli(
            "nodes", "add", "org/model-a", "http://127.0.0.1:9", "--region", "eu-west", "--json"
        ).stdout
    )
    assert node["state"] == "ready" and node["region"] == "eu-west"
    shown = json.loads(control_plane.cli("models", "show", "org/model-a", "--json").stdout)
    assert shown["context_length"] == 4096
    control_plane.cli("nodes", "remove", node["id"])
    assert json.loads(control_plane.cli("nodes", "list", "--json").stdout) == []


def test_unreachable_control_plane_is_reported(control_plane: ControlPlane) -> None:
    env = dict(control_plane.env, CIC_URL="http://127.0.0.1:9")
    import subprocess

    from tests.e2e.conftest import BIN

    out = subprocess.run(
        [str(BIN / "cicfleet"), "tenants", "list"],
        env=env,
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert out.returncode == 1 and "cannot reach the control plane" in out.stderr
