"""The ``cicfleet`` command line.

``serve`` runs the control plane; ``db upgrade`` migrates; every other command is a client of
the admin API (``CIC_URL``, ``CIC_ADMIN_TOKEN``), so it works against a remote control plane.
"""

from __future__ import annotations

import sys

import click

from fleet import SettingsError, load_settings
from fleet.settings import Settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"cicfleet: {exc.message}", err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """cicfleet: OpenAI gateway and GPU fleet manager."""


@main.command()
@click.option("--demo", is_flag=True, help="Embedded demo: local simulated GPU nodes, a demo key.")
def serve(demo: bool) -> None:
    """Run the control plane (CIC_HOST:CIC_PORT)."""
    import uvicorn

    from api.app import create_app
    from fleet import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to CIC_DATABASE_URL (run once per deploy)."""
    from fleet.db import upgrade_sync

    settings = _settings()
    upgrade_sync(settings.effective_database_url, revision)
    click.echo(f"database at {revision}")
