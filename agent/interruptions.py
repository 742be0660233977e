"""Spot interruption notices, one small watcher per cloud behind one interface.

Each watcher asks its cloud's instance metadata service whether the machine is about to be
taken away and returns a :class:`Notice` (with the cloud's deadline when it gives one) or
``None``. The agent polls the configured watcher and reports a notice at once, so the control
plane can drain the node and launch its replacement while the node still serves.

- AWS: IMDSv2 token, then ``/latest/meta-data/spot/instance-action`` (404 until a notice;
  then ``{"action": "terminate", "time": ...}``, two minutes ahead).
- GCP: ``/computeMetadata/v1/instance/preempted`` says ``TRUE`` (about 30 s ahead).
- Azure: Scheduled Events lists a ``Preempt`` event with ``NotBefore``.
- file: a file appears (local nodes and tests simulate a notice this way).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Protocol

import httpx

AWS_BASE = "http://169.254.169.254"
GCP_BASE = "http://metadata.google.internal"
AZURE_BASE = "http://169.254.169.254"
GCP_NOTICE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Notice:
    kind: str
    deadline: float | None = None
    """Epoch seconds at which the cloud takes the machine, when known."""


class InterruptionWatcher(Protocol):
    name: str

    async def check(self, http: httpx.AsyncClient, now: float) -> Notice | None:
        """The pending notice, or ``None``; errors of the metadata service mean ``None``."""
        ...


@dataclass
class AwsWatcher:
    base_url: str = AWS_BASE
    name: str = "aws"

    async def check(self, http: httpx.AsyncClient, now: float) -> Notice | None:
        token = await http.put(
            f"{self.base_url}/latest/api/token",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"},
        )
        if token.status_code != 200:
            return None
        resp = await http.get(
            f"{self.base_url}/latest/meta-data/spot/instance-action",
            headers={"X-aws-ec2-metadata-token": token.text},
        )
        if resp.status_code != 200:
            return None
        body = json.loads(resp.text)
        if body.get("action") not in ("terminate", "stop", "hibernate"):
            return None
        when = datetime.fromisoformat(body["time"].replace("Z", "+00:00")).timestamp()
        return Notice(kind="aws-spot", deadline=when)


@dataclass
class GcpWatcher:
    base_url: str = GCP_BASE
    name: str = "gcp"

    async def check(self, http: httpx.AsyncClient, now: float) -> Notice | None:
        resp = await http.get(
            f"{self.base_url}/computeMetadata/v1/instance/preempted",
            headers={"Metadata-Flavor": "Google"},
        )
        if resp.status_code == 200 and resp.text.strip().upper() == "TRUE":
            return Notice(kind="gcp-preempted", deadline=now + GCP_NOTICE_SECONDS)
        return None


@dataclass
class AzureWatcher:
    base_url: str = AZURE_BASE
    name: str = "azure"

    async def check(self, http: httpx.AsyncClient, now: float) -> Notice | None:
        resp = await http.get(
            f"{self.base_url}/metadata/scheduledevents",
            params={"api-version": "2020-07-01"},
            headers={"Metadata": "true"},
        )
        if resp.status_code != 200:
            return None
        for event in resp.json().get("Events", []):
            if event.get("EventType") == "Preempt":
                not_before = event.get("NotBefore")
                deadline = parsedate_to_datetime(not_before).timestamp() if not_before else None
                return Notice(kind="azure-preempt", deadline=deadline)
        return None


@dataclass
class FileWatcher:
    """A notice is a file: its content, if a number, is the seconds left."""

    path: Path
    name: str = "file"

    async def check(self, http: httpx.AsyncClient, now: float) -> Notice | None:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        try:
            return Notice(kind="simulated", deadline=now + float(text))
        except ValueError:
            return Notice(kind="simulated")


def watcher(name: str, *, notice_file: Path | None = None) -> InterruptionWatcher | None:
    """The watcher called ``name`` (``none`` means none: an on-demand node)."""
    if name == "none":
        return None
    if name == "file":
        if notice_file is None:
            raise ValueError("the file watcher needs a notice file")
        return FileWatcher(notice_file)
    clouds: dict[str, Callable[[], InterruptionWatcher]] = {
        "aws": AwsWatcher,
        "gcp": GcpWatcher,
        "azure": AzureWatcher,
    }
    found = clouds.get(name)
    if found is None:
        raise ValueError(f"unknown interruption watcher {name!r}")
    return found()
