"""Billing from the operator's CLI against a real control plane, with Stripe played by a small
local HTTP server at CIC_STRIPE_API_BASE: usage, margin, credits, and an export run twice."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from tests.e2e.conftest import start_control_plane, stop

pytestmark = pytest.mark.e2e


class FakeStripe(BaseHTTPRequestHandler):
    calls: Counter[str] = Counter()
    events: dict[str, dict[str, str]] = {}

    def do_POST(self) -> None:
        form = dict(parse_qsl(self.rfile.read(int(self.headers["content-length"])).decode()))
        if self.path == "/v1/customers":
            body = {"id": "cus_e2e", "object": "customer"}
        elif self.path == "/v1/billing/meter_events":
            FakeStripe.calls[form["identifier"]] += 1
            FakeStripe.events.setdefault(form["identifier"], form)
            body = {"object": "billing.meter_event", "identifier": form["identifier"]}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


async def _usage(home: str, tenant_id: str, at: datetime) -> None:
    from fleet import build_services, load_settings
    from fleet.tables import UsageRecord

    async with build_services(load_settings(home=home), migrate=False) as svc:
        async with svc.sessions() as s:
            for i in range(3):
                s.add(
                    UsageRecord(
                        request_id=f"e2e-{i}",
                        tenant_id=tenant_id,
                        environment_id="env",
                        key_id="key_e2e",
                        model="m",
                        endpoint="chat.completions",
                        prompt_tokens=100,
                        completion_tokens=40,
                        cost=Decimal("0.001"),
                        gpu_cost=Decimal("0.0004"),
                        created_at=at + timedelta(minutes=i),
                    )
                )
            await s.commit()


def test_usage_margin_credits_and_export_twice(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeStripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cp = start_control_plane(
        tmp_path,
        extra_env={
            "CIC_STRIPE_API_KEY": "sk_test_e2e",
            "CIC_STRIPE_API_BASE": f"http://127.0.0.1:{server.server_address[1]}",
        },
    )
    try:
        tenant = json.loads(cp.cli("tenants", "create", "acme", "--json").stdout)
        grant = json.loads(cp.cli("credits", "grant", "acme", "0.001", "--json").stdout)
        assert Decimal(grant["balance"]) == Decimal("0.001")
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
        asyncio.run(_usage(cp.env["CIC_HOME"], tenant["id"], hour))

        usage = json.loads(cp.cli("usage", "--tenant", "acme", "--by", "hour", "--json").stdout)
        [row] = usage["data"]
        assert row["group"] == hour.isoformat().replace("+00:00", "Z")
        assert (row["requests"], row["prompt_tokens"], Decimal(row["cost"])) == (
            3,
            300,
            Decimal("0.003"),
        )
        assert "requests" in cp.cli("usage").stdout  # the table for people renders
        [margin] = json.loads(cp.cli("margin", "--json").stdout)
        assert Decimal(margin["margin"]) == Decimal("0.0018")
        shown = json.loads(cp.cli("credits", "show", "acme", "--json").stdout)
        assert Decimal(shown["balance"]) == 0  # $0.003 used, $0.001 granted

        first = json.loads(cp.cli("billing", "export", "--hour", hour.isoformat(), "--json").stdout)
        again = json.loads(cp.cli("billing", "export", "--hour", hour.isoformat(), "--json").stdout)
        assert first["sent"] == 3 and first["failed"] == 0 and again["sent"] == 0
        assert set(FakeStripe.calls.values()) == {1}
        totals = Counter()
        for form in FakeStripe.events.values():
            totals[form["event_name"]] += int(form["payload[value]"])
        # tokens agree with usage_records; $0.002 billed after the $0.001 credit
        assert totals == {
            "cic_input_tokens": 300,
            "cic_output_tokens": 120,
            "cic_billable_microusd": 2000,
        }
    finally:
        stop(cp.proc)
        server.shutdown()
