"""``cicfleet scale`` with autoscaling settings and ``cicfleet status --jobs`` against a real
control plane process (embedded store: the process is its own leader)."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import ControlPlane

pytestmark = pytest.mark.e2e


def test_scale_settings_and_jobs_status(control_plane: ControlPlane) -> None:
    control_plane.cli("models", "add", "org/m")
    out = control_plane.cli(
        "scale", "org/m", "--min", "0", "--max", "3", "--target", "8", "--json"
    ).stdout
    row = json.loads(out)
    assert (row["model"], row["min_replicas"], row["max_replicas"], row["target"]) == (
        "org/m",
        0,
        3,
        8.0,
    )
    bad = control_plane.cli("scale", "org/m", "--min", "5", check=False)
    assert bad.returncode != 0

    deadline = time.monotonic() + 30
    while True:
        report = json.loads(control_plane.cli("status", "--jobs", "--json").stdout)
        names = {j["name"] for j in report["jobs"]}
        if {"reconciler", "autoscaler"} <= names or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert report["leader"]["holder"]
    assert {"reconciler", "autoscaler"} <= names
    table = control_plane.cli("status", "--jobs").stdout
    assert "leader:" in table and "reconciler" in table
