"""Readable, prefixed ids (``ten_…``, ``key_…``): an id in a log tells what it names."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"
