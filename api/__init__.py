"""The HTTP face of cicfleet: the Litestar app and the ``cicfleet`` CLI; thin over ``fleet``."""

from api.app import create_app

__all__ = ["create_app"]
