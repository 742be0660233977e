"""The ``cicfleet`` command line.

``serve``, ``db`` and ``agent`` run things on this machine; every other command is a client of
the admin API (``CIC_URL``, ``CIC_ADMIN_TOKEN``), so it works against a remote control plane.
Each area's commands live in their own module and are registered here.
"""

from __future__ import annotations

import click

from api.cli.billing import billing, credits, margin, usage
from api.cli.catalog import audit, models, nodes
from api.cli.fleet import agent, down, drain, launch, scale, status
from api.cli.limits import limits, plans
from api.cli.server import db, serve
from api.cli.tenancy import envs, keys, tenants


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """cicfleet: OpenAI gateway and GPU fleet manager."""


for _command in (serve, db, tenants, envs, keys, models, nodes, audit):
    main.add_command(_command)
for _command in (limits, plans):
    main.add_command(_command)
for _command in (launch, scale, status, drain, down, agent):
    main.add_command(_command)
for _command in (usage, credits, margin, billing):
    main.add_command(_command)

__all__ = ["main"]
