"""The web console in a real browser (Debian's headless Chromium driven by Playwright) against
a real ``cicfleet serve --demo`` with local simulated GPU nodes.

Screenshots of the main pages go to ``test-artifacts/console/``; with
``CIC_UPDATE_SCREENSHOTS=1`` they also replace the ones in ``docs/screenshots/`` that the
README shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.conftest import ROOT, ControlPlane, start_control_plane, stop

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CIC_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "console"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
HOW_TO = (
    "needs headless Chromium from Debian's packages and Playwright: `apt-get install -y "
    "chromium` and `make setup` (never `playwright install`); set CIC_CHROMIUM for another path"
)


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: {HOW_TO}")
    pytest.skip(f"{reason}: {HOW_TO}")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} not found")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = start_control_plane(
        tmp_path_factory.mktemp("console"),
        "--demo",
        extra_env={"CIC_USAGE_FLUSH_SECONDS": "0.1", "CIC_LOG_LEVEL": "WARNING"},
    )
    yield cp
    stop(cp.proc)


def _printed(cp: ControlPlane, name: str) -> str:
    match = re.search(rf"{name}=(\S+)", cp.log.read_text())
    assert match, f"{name} not printed:\n{cp.log.read_text()[-2000:]}"
    return match.group(1)


def _ready_nodes(cp: ControlPlane, want: int, timeout: float = 60) -> list[dict]:
    end = time.monotonic() + timeout
    nodes: list[dict] = []
    while time.monotonic() < end:
        nodes = [
            n
            for n in json.loads(cp.cli("status", "--json").stdout)["nodes"]
            if n["state"] == "ready"
        ]
        if len(nodes) >= want:
            return nodes
        time.sleep(0.5)
    raise AssertionError(f"only {len(nodes)} ready nodes: {cp.log.read_text()[-2000:]}")


def _shot(page: object, name: str, **kw: object) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, **kw)  # type: ignore[attr-defined]
    if os.environ.get("CIC_UPDATE_SCREENSHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SHOTS / path.name)


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, button')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                 && !e.textContent.trim())
    .map(e => e.outerHTML)"""


def _unlabelled(page: object) -> list[str]:
    """Form controls a screen reader could not name."""
    return page.evaluate(UNLABELLED)  # type: ignore[attr-defined, no-any-return]


def _sign_in_operator(browser: object, cp: ControlPlane) -> object:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{cp.url}/console/")
    page.get_by_label("Admin token").fill(
        (Path(cp.env["CIC_HOME"]) / "admin_token").read_text().strip()
    )
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/fleet$"))
    return page


def test_tenant_creates_a_key_uses_it_and_sees_the_usage_live(
    browser: object, demo: ControlPlane
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    problems: list[str] = []  # script errors and Content-Security-Policy refusals
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(_printed(demo, "CONSOLE_LOGIN_URL"))
    page.wait_for_url(re.compile(r"/console/t/ten_\w+$"))
    tenant_url = page.url
    cookie = next(c for c in context.cookies() if c["name"] == "cic_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    page.get_by_label("Key name").fill("from-the-console")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-key").input_value()
    assert key.startswith("sk-")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == key
    _shot(page, "key-created", mask=[page.get_by_test_id("new-key")])

    # The usage page is open before the request and is never reloaded.
    page.goto(f"{tenant_url}/usage")
    expect(page.get_by_test_id("total-requests")).to_have_text("0")
    _ready_nodes(demo, 1)
    client = openai.OpenAI(base_url=f"{demo.url}/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(
        model="demo-llm", messages=[{"role": "user", "content": "hello from the console"}]
    )
    expect(page.get_by_test_id("total-requests")).to_have_text("1", timeout=15_000)
    assert int(page.get_by_test_id("total-tokens").inner_text().replace(",", "")) == (
        reply.usage.prompt_tokens + reply.usage.completion_tokens
    )
    expect(page.get_by_test_id("by-key")).to_contain_text("from-the-console")
    expect(page.get_by_test_id("by-model")).to_contain_text("demo-llm")
    assert page.locator("svg.chart rect.bar").count() >= 3
    _shot(page, "tenant-usage")

    page.goto(tenant_url)
    expect(page.locator("tr", has_text="from-the-console")).to_contain_text("active")
    assert _unlabelled(page) == []
    _shot(page, "tenant-keys")

    phone = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        storage_state=context.storage_state(),
    )
    mobile = phone.new_page()
    mobile.goto(f"{tenant_url}/usage")
    expect(mobile.get_by_test_id("total-requests")).to_have_text("1")
    width = mobile.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the usage page is {width}px wide on a 390px phone"
    _shot(mobile, "tenant-usage-phone")

    # Revoking from the console stops the key at the gateway.
    page.get_by_role("button", name="Revoke key from-the-console").click()
    expect(page.locator("tr", has_text="from-the-console")).to_contain_text("revoked")
    deadline = time.monotonic() + 10
    while True:
        try:
            client.chat.completions.create(
                model="demo-llm", messages=[{"role": "user", "content": "again"}]
            )
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.5)
    assert problems == []
    context.close()
    phone.close()


def test_operator_drains_a_node_and_watches_its_state_change(
    browser: object, demo: ControlPlane
) -> None:
    from playwright.sync_api import expect

    ready = _ready_nodes(demo, 2)
    page = _sign_in_operator(browser, demo)
    node = ready[0]["id"]
    row = page.locator(f"tr[data-node='{node}']")
    expect(row.get_by_test_id("state")).to_have_text("ready")

    row.get_by_role("button", name=f"Drain node {node}").click()
    page.wait_for_url(re.compile(r"/console/fleet$"))
    expect(row.get_by_test_id("state")).to_have_text(re.compile("draining|terminated"))
    states = {n["id"]: n["state"] for n in json.loads(demo.cli("status", "--json").stdout)["nodes"]}
    assert states.get(node, "terminated") in ("draining", "terminated")
    # The drained node is replaced by the reconciler; the page shows it without a reload.
    expect(page.locator("[data-testid=state]", has_text="ready")).to_have_count(2, timeout=60_000)

    page.goto(f"{demo.url}/console/fleet/nodes/{node}")
    expect(page.get_by_test_id("state")).to_have_text(re.compile("draining|terminated"))
    events = page.get_by_test_id("events")
    expect(events).to_contain_text("node.drain by console:admin")
    expect(events).to_contain_text(re.compile(r"ready → (draining|terminated)"))
    expect(page.get_by_test_id("heartbeats")).not_to_contain_text("No heartbeat", timeout=20_000)
    _shot(page, "node")

    page.goto(f"{demo.url}/console/tenants")
    expect(page.locator("tr[data-tenant='demo']")).to_contain_text("active")
    _shot(page, "tenants")
    page.goto(f"{demo.url}/console/revenue")
    expect(page.get_by_role("heading", name="Revenue and GPU cost")).to_be_visible()
    _shot(page, "revenue")
    page.context.close()


def test_operator_suspends_and_restores_a_tenant(browser: object, demo: ControlPlane) -> None:
    from playwright.sync_api import expect

    demo.cli("tenants", "create", "suspendable")
    page = _sign_in_operator(browser, demo)
    page.goto(f"{demo.url}/console/tenants")
    row = page.locator("tr[data-tenant='suspendable']")
    row.get_by_role("button", name="Suspend").click()
    expect(row).to_contain_text("suspended")
    shown = json.loads(demo.cli("tenants", "list", "--json").stdout)
    assert {t["name"]: t["status"] for t in shown}["suspendable"] == "suspended"
    row.get_by_role("button", name="Restore").click()
    expect(row).to_contain_text("active")
    page.context.close()


def test_a_tenant_cannot_open_another_tenants_pages(browser: object, demo: ControlPlane) -> None:
    demo_id = json.loads(demo.cli("tenants", "list", "--json").stdout)
    demo_id = next(t["id"] for t in demo_id if t["name"] == "demo")
    demo.cli("tenants", "create", "other")
    link = json.loads(demo.cli("tenants", "login-link", "other", "--json").stdout)
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(link["url"])
    page.wait_for_url(re.compile(r"/console/t/ten_\w+$"))
    assert demo_id not in page.url
    for path in (f"/console/t/{demo_id}", f"/console/t/{demo_id}/usage", "/console/fleet"):
        response = page.goto(f"{demo.url}{path}")
        assert response is not None and response.status == 403, path
        assert "demo" not in page.locator("main").inner_text().lower()
    # Nor change them: a form post to the other tenant's keys is refused with its own token.
    csrf = page.evaluate("document.querySelector('input[name=_csrf]')?.value")
    status = page.evaluate(
        """async ([url, csrf]) => (await fetch(url, {method: 'POST',
            headers: {'content-type': 'application/x-www-form-urlencoded'},
            body: '_csrf=' + encodeURIComponent(csrf) + '&name=stolen'})).status""",
        [f"{demo.url}/console/t/{demo_id}/keys", csrf or ""],
    )
    assert status == 403
    # A used link does not sign in again.
    again = browser.new_context().new_page()  # type: ignore[attr-defined]
    again.goto(link["url"])
    assert "/console/t/" not in again.url
    context.close()


def test_operator_sees_autoscaling_targets_and_decisions(
    browser: object, demo: ControlPlane
) -> None:
    from playwright.sync_api import expect

    _ready_nodes(demo, 2)
    page = _sign_in_operator(browser, demo)
    assert _unlabelled(page) == []
    decisions = page.get_by_test_id("decisions")
    expect(decisions).to_contain_text("No decisions yet")
    # A keyboard user's focus survives the live refreshes.
    page.locator("button[id^=drain-]").first.focus()
    focused = page.evaluate("document.activeElement.id")
    assert focused.startswith("drain-")
    demo.cli("scale", "demo-llm", "--min", "2", "--max", "3")
    # The leader's autoscaler ticks every 10 s; the open page shows its decision by itself.
    expect(page.get_by_test_id("autoscaling")).to_contain_text("2\u20133", timeout=10_000)
    expect(decisions.locator("tr", has_text="demo-llm")).to_have_count(1, timeout=30_000)
    assert page.evaluate("document.activeElement.id") == focused
    _shot(page, "fleet")
    page.context.close()
