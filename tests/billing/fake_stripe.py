"""A fake of the two Stripe endpoints the exporter uses, on respx, with Stripe's
behaviours that matter here: a meter event identifier is taken once, and 429s on demand."""

from __future__ import annotations

import json
from collections import Counter
from urllib.parse import parse_qsl

import httpx
import respx

BASE = "http://stripe.test"


class FakeStripe:
    def __init__(self, router: respx.MockRouter) -> None:
        self.events: dict[str, dict[str, str]] = {}  # identifier -> form fields
        self.calls: Counter[str] = Counter()
        self.fail_next: list[int] = []  # statuses to answer the next meter calls with
        self.customers: dict[str, str] = {}
        router.post(f"{BASE}/v1/billing/meter_events").mock(side_effect=self._meter_event)
        router.post(f"{BASE}/v1/customers").mock(side_effect=self._customer)

    def _meter_event(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        ident = form["identifier"]
        self.calls[ident] += 1
        if self.fail_next:
            status = self.fail_next.pop(0)
            err = {"error": {"type": "api_error", "message": f"fake {status}"}}
            if status == 429:
                err["error"].update(type="invalid_request_error", code="rate_limit")
            return httpx.Response(status, json=err)
        self.events.setdefault(ident, form)  # Stripe keeps the first event per identifier
        body = {
            "object": "billing.meter_event",
            "event_name": form["event_name"],
            "identifier": ident,
            "payload": {"stripe_customer_id": form["payload[stripe_customer_id]"]},
            "timestamp": int(form["timestamp"]),
        }
        return httpx.Response(200, json=body)

    def _customer(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        tenant = form["metadata[tenant_id]"]
        cid = self.customers.setdefault(tenant, f"cus_{len(self.customers) + 1}")
        return httpx.Response(200, json={"id": cid, "object": "customer", "metadata": {}})

    def totals(self, customer: str) -> dict[str, int]:
        """What Stripe would bill ``customer`` per meter: each identifier counted once."""
        out: Counter[str] = Counter()
        for form in self.events.values():
            if form["payload[stripe_customer_id]"] == customer:
                out[form["event_name"]] += int(form["payload[value]"])
        return dict(out)


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))
