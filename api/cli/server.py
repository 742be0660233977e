"""Commands that run on this machine: ``serve`` and ``db upgrade``."""

from __future__ import annotations

import signal
import sys

import click

from api.cli.common import settings_or_exit


@click.command()
@click.option("--demo", is_flag=True, help="Embedded demo: local simulated GPU nodes, a demo key.")
def serve(demo: bool) -> None:
    """Run the control plane on CIC_HOST:CIC_PORT."""
    from granian import Granian
    from granian.constants import Interfaces, Loops

    from fleet import SettingsError, configure_logging
    from fleet.admin_token import ensure_admin_token

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    try:
        ensure_admin_token(settings)  # fail here with one line, not inside the server worker
    except SettingsError as exc:
        raise click.ClickException(exc.message) from None
    demo_nodes = None
    if demo:
        from api.demo import start_demo

        demo_nodes = start_demo(settings)
        # A SIGTERM must end in `finally` below (not kill the process outright), or the
        # demo's local nodes would outlive it.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # granian (Rust HTTP, uvloop): measured against uvicorn+httptools in
        # bench/gateway_overhead.py, it served 1.3-1.4x the requests per second through the
        # proxy and halved the added latency at one client (docs/performance.md). The app is
        # built by the factory in granian's worker from the same CIC_* environment. No
        # access log: requests are counted in /metrics.
        Granian(
            "api.asgi:app",
            factory=True,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            workers=1,
            runtime_threads=1,
            loop=Loops.uvloop,
            websockets=False,
            log_level=settings.log_level.lower(),  # type: ignore[arg-type]
            log_access=False,
            # Backstop after SIGTERM: the app ends open requests after the grace period
            # (api/shutdown.py) and then flushes usage; a worker stuck past that is killed.
            workers_kill_timeout=int(settings.shutdown_grace_seconds) + 30,
        ).serve()
    finally:
        if demo_nodes is not None:
            demo_nodes.close()


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to CIC_DATABASE_URL (run once per deploy, before the replicas start)."""
    from fleet.db import upgrade_sync

    settings = settings_or_exit()
    upgrade_sync(settings.effective_database_url, revision)
    click.echo(f"database at {revision}")
