"""What every CLI command shares: settings, the admin API client, and output (a rich table
for people, ``--json`` for scripts)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import click
import httpx

from fleet import SettingsError, load_settings
from fleet.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"cicfleet: {exc.message}", err=True)
        sys.exit(2)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def admin_token(settings: Settings) -> str | None:
    """``CIC_ADMIN_TOKEN``, else the token an embedded control plane wrote to ``CIC_HOME``."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    path = settings.admin_token_file
    if path.exists():
        return path.read_text().strip() or None
    return None


class AdminClient:
    """A small client of the admin API; errors become one readable line and exit code 1."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None):
        token = admin_token(settings)
        headers = {"x-cic-actor": _whoami()}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.base_url = settings.effective_url
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=30.0, transport=transport
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the control plane at {self.base_url}: {exc}")
        if resp.status_code >= 400:
            try:
                message = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = resp.text.strip() or resp.reason_phrase
            fail(f"{message} (HTTP {resp.status_code})")
        return resp.json() if resp.content else None

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.request("PATCH", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


def _whoami() -> str:
    import getpass
    import socket

    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"[:64]
    except Exception:
        return "cli"


def client() -> AdminClient:
    return AdminClient(settings_or_exit())


def fail(message: str) -> None:
    click.echo(f"cicfleet: {message}", err=True)
    sys.exit(1)


def emit(
    data: Any, *, as_json: bool, columns: Sequence[str] | None = None, title: str = ""
) -> None:
    """Print ``data`` (an object or a list of objects) as JSON or as a table of ``columns``."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    rows: Iterable[Mapping[str, Any]] = data if isinstance(data, list) else [data]
    rows = list(rows)
    cols = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=title or None)
    for col in cols:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in cols))
    Console().print(table)
