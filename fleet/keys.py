"""API key material: how keys look, how they are hashed, what a resolved key carries.

Only the SHA-256 of a key is stored; the plaintext is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_PREFIX = "sk-cic-"
DISPLAY_CHARS = 12


def generate_key() -> str:
    """A new API key: a fixed prefix (so secret scanners can find leaked keys) + 256 bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """What listings show of a key: enough to recognise it, useless to an attacker."""
    return key[:DISPLAY_CHARS]


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the gateway knows about an authenticated caller."""

    key_id: str
    tenant_id: str
    environment_id: str
    tenant_status: str
    plan: str
    expires_at: float | None = None
