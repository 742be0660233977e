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
    import uvicorn

    from api.app import create_app
    from fleet import configure_logging

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    demo_nodes = None
    if demo:
        from api.demo import start_demo

        demo_nodes = start_demo(settings)
        # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler that
        # kills the process before `finally`, so the demo's nodes would outlive it.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
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
