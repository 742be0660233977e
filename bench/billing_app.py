"""ASGI factory for bench/billing.py: the real control plane, with usage metering switched off
(a sink that drops events) when ``BENCH_METERING=off``, to measure what metering costs."""

from __future__ import annotations

import os
from typing import Any

from api.app import create_app
from fleet import load_settings
from fleet.usage import UsageEvent


class DropSink:
    async def record(self, event: UsageEvent) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


def app() -> Any:
    application = create_app(load_settings())
    gateway = application.openai_fast_path
    if os.environ.get("BENCH_METERING") == "off" and gateway is not None:
        drop = DropSink()

        async def unmetered(scope: Any, receive: Any, send: Any) -> None:
            services = gateway._services
            if services is not None and services.usage is not drop:
                services.usage = drop
            await gateway(scope, receive, send)

        application.openai_fast_path = unmetered
    return application
