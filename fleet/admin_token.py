"""The operator's bearer token for ``/admin``.

Production sets ``CIC_ADMIN_TOKEN`` (every replica must share it). An embedded control plane
without one generates a token once and keeps it in ``CIC_HOME/admin_token`` (mode 0600), where
the local CLI finds it, so ``make run`` needs no setup and the admin API is never open.
"""

from __future__ import annotations

import hmac
import os
import secrets

from fleet.errors import SettingsError
from fleet.settings import Settings


def ensure_admin_token(settings: Settings) -> str:
    if settings.admin_token is not None:
        token = settings.admin_token.get_secret_value()
        if len(token) < 16:
            raise SettingsError("CIC_ADMIN_TOKEN: must be at least 16 characters")
        return token
    if not settings.is_embedded_database:
        raise SettingsError(
            "CIC_ADMIN_TOKEN: required when CIC_DATABASE_URL is not the embedded SQLite "
            "(every replica must share one admin token)"
        )
    path = settings.admin_token_file
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak the token."""
    return hmac.compare_digest(given.encode(), expected.encode())
