"""The ASGI entry point for servers started from the command line, e.g.::

    granian --interface asgi --factory api.asgi:app
    uvicorn --factory api.asgi:app

Settings come from ``CIC_*`` variables when the server calls the factory, never at import.
"""

from __future__ import annotations

from litestar import Litestar

from api.app import create_app
from fleet import configure_logging, load_settings


def app() -> Litestar:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings, handle_signals=True)
