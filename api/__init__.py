"""The HTTP face of cicfleet: the Litestar app and the ``cicfleet`` CLI; thin over ``fleet``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so `cicfleet --help` and the CLI's HTTP commands do not import the web stack.
    if name == "create_app":
        from api.app import create_app

        return create_app
    raise AttributeError(f"module 'api' has no attribute {name!r}")


if TYPE_CHECKING:
    from api.app import create_app
