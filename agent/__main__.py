"""``python -m agent``: the node agent configured from ``CIC_AGENT_*`` variables."""

import asyncio
import sys

from agent.node_agent import AgentConfig, serve
from fleet import configure_logging

configure_logging("INFO", "json")
sys.exit(asyncio.run(serve(AgentConfig())))  # type: ignore[call-arg]
