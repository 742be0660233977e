"""``cicfleet tenants login-link`` against a real control plane: the printed link signs the
tenant in to the console once."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.conftest import ControlPlane

pytestmark = pytest.mark.e2e


def test_login_link_signs_the_tenant_in_once(control_plane: ControlPlane) -> None:
    control_plane.cli("tenants", "create", "acme")
    out = control_plane.cli("tenants", "login-link", "acme").stdout
    match = re.search(r"^(http://\S+/console/login/link/\S+)$", out, re.M)
    assert match, out
    assert "works once" in out

    with httpx.Client(follow_redirects=True) as browser:
        page = browser.get(match.group(1))
        assert page.status_code == 200
        assert re.fullmatch(r"/console/t/ten_\w+", page.url.path)
        assert "acme" in page.text
    again = httpx.get(match.group(1), follow_redirects=True)
    assert again.status_code == 401


def test_login_link_for_an_unknown_tenant_is_one_line(control_plane: ControlPlane) -> None:
    out = control_plane.cli("tenants", "login-link", "ghost", check=False)
    assert out.returncode == 1
    assert "tenant 'ghost' not found (HTTP 404)" in out.stderr
