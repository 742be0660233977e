"""``cicfleet serve --demo``: the embedded control plane with simulated GPU nodes, a demo
tenant and key, ready for an OpenAI client the moment it starts."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from decimal import Decimal

import click

from fleet import NotFound, Settings, build_services, get_logger, hash_key
from fleet.billing.credits import grant_credit
from fleet.console_auth import ConsoleAuth

log = get_logger("cicfleet.demo")

DEMO_MODEL = "demo-llm"
DEMO_TENANT = "demo"
DEMO_NODES = 2
DEMO_CREDIT = Decimal("5.00")


@dataclass
class Demo:
    """What the demo leaves running beside the server: its local GPU nodes."""

    settings: Settings
    key: str

    def close(self) -> None:
        """Stop the demo's local nodes with the server: a demo leaves no processes behind.
        The next start finds the clusters gone and the reconciler launches fresh ones."""
        from fleet.providers.local import LocalProvider

        provider = LocalProvider(
            self.settings.home,
            control_url=self.settings.effective_url,
            prefix=self.settings.cluster_prefix,
        )

        async def stop_all() -> None:
            for cluster in await provider.status():
                await provider.terminate(cluster.cluster)

        asyncio.run(stop_all())


async def _provision(settings: Settings) -> tuple[str, str]:
    """Model, tenant, key and a pool of local nodes for the demo; reuses the key across
    restarts. The pool is desired state: the server's reconciler launches the nodes."""
    key_file = settings.home / "demo_key"
    async with build_services(settings) as svc:
        if DEMO_MODEL not in await svc.catalog.models():
            await svc.catalog.create_model(
                DEMO_MODEL,
                context_length=8192,
                default_max_tokens=256,
                input_per_1m=Decimal("0.10"),
                output_per_1m=Decimal("0.30"),
                actor="demo",
            )
        try:
            await svc.tenancy.get_tenant(DEMO_TENANT)
        except NotFound:
            tenant = await svc.tenancy.create_tenant(DEMO_TENANT, plan="pro", actor="demo")
            # Free-tier credit, so the demo serves even where billing enforces quota.
            await grant_credit(svc.sessions, tenant.id, DEMO_CREDIT, kind="free_tier", actor="demo")
        key = key_file.read_text().strip() if key_file.exists() else ""
        if not key or await svc.tenancy.resolve(hash_key(key)) is None:
            _, key = await svc.tenancy.create_key(DEMO_TENANT, name="demo", actor="demo")
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key + "\n")
        status = await svc.fleet.pools.status(DEMO_MODEL)
        if not status.get("pools"):
            await svc.fleet.pools.launch(
                DEMO_MODEL, replicas=DEMO_NODES, provider="local", actor="demo"
            )
        link = await ConsoleAuth(
            svc.sessions, clock=svc.clock, link_seconds=settings.console_link_seconds
        ).login_link(DEMO_TENANT, actor="demo")
    return key, link.token


def start_demo(settings: Settings) -> Demo:
    """Provision the demo tenant and its local nodes, print how to call the endpoint."""
    settings.home.mkdir(parents=True, exist_ok=True)
    key, link = asyncio.run(_provision(settings))
    demo = Demo(settings=settings, key=key)
    console = f"{settings.effective_url}/console"
    base = f"{settings.effective_url}/v1"
    click.echo(
        "\ncicfleet demo: embedded control plane launching "
        f"{DEMO_NODES} simulated GPU nodes for '{DEMO_MODEL}' (ready in a few seconds; "
        "`cicfleet status` shows them)\n\n"
        f"OPENAI_BASE_URL={base}\nOPENAI_API_KEY={demo.key}\n\n"
        f"curl {base}/chat/completions -H 'Authorization: Bearer {demo.key}' "
        "-H 'Content-Type: application/json' "
        f'-d \'{{"model": "{DEMO_MODEL}", "messages": '
        '[{"role": "user", "content": "Hello"}]}\'\n\n'
        f"Web console: {console}\n"
        f"  demo tenant (one-time link): CONSOLE_LOGIN_URL={console}/login/link/{link}\n"
        f"  operators: sign in with the admin token in {settings.admin_token_file}\n"
    )
    return demo
