"""``x-request-id`` on every response outside ``/v1`` (the OpenAI routes do it themselves on
the hot path): taken from the request or generated, echoed, and put in the logs' context."""

from __future__ import annotations

from random import getrandbits
from typing import Any

from fleet import request_id_var

ASGIApp = Any


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        # Routing has already cut the mount's prefix off "path"; "raw_path" keeps it.
        raw = scope.get("raw_path") or scope["path"].encode()
        if scope["type"] != "http" or raw.startswith(b"/v1/"):
            await app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value[:64]
                break
        header = (b"x-request-id", rid or f"{getrandbits(96):024x}".encode())
        token = request_id_var.set(header[1].decode("latin-1"))

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)

    return middleware
