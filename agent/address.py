"""The URL the gateway should use to reach this node's engine.

vLLM listens on ``127.0.0.1:8000`` as seen from the node itself, which is useless to a control
plane in another network. A cloud node learns its own address from its cloud's instance
metadata service: the public IP when the control plane runs elsewhere (the default in the task
files), the private IP when both share a VPC. The scheme and port of the node's entry (the
gate's when it has one, else the engine's) are kept.

``CIC_AGENT_ADVERTISE_URL`` set explicitly wins over all of this; ``engine`` (the default, for
local nodes) advertises the node's entry on 127.0.0.1 as it is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from agent.interruptions import AWS_BASE, AZURE_BASE, GCP_BASE

ADVERTISE_CHOICES = (
    "engine",
    "aws-public",
    "aws-private",
    "gcp-public",
    "gcp-private",
    "azure-public",
    "azure-private",
)


class AddressUnavailable(Exception):
    """The metadata service answered, but has no such address (a node without a public IP
    asked to advertise one): a configuration error, not worth retrying."""


async def _aws(http: httpx.AsyncClient, network: str) -> httpx.Response:
    token = await http.put(
        f"{AWS_BASE}/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    token.raise_for_status()
    item = "public-ipv4" if network == "public" else "local-ipv4"
    return await http.get(
        f"{AWS_BASE}/latest/meta-data/{item}", headers={"X-aws-ec2-metadata-token": token.text}
    )


async def _gcp(http: httpx.AsyncClient, network: str) -> httpx.Response:
    nic = f"{GCP_BASE}/computeMetadata/v1/instance/network-interfaces/0"
    path = "access-configs/0/external-ip" if network == "public" else "ip"
    return await http.get(f"{nic}/{path}", headers={"Metadata-Flavor": "Google"})


async def _azure(http: httpx.AsyncClient, network: str) -> httpx.Response:
    item = "publicIpAddress" if network == "public" else "privateIpAddress"
    return await http.get(
        f"{AZURE_BASE}/metadata/instance/network/interface/0/ipv4/ipAddress/0/{item}",
        params={"api-version": "2021-02-01", "format": "text"},
        headers={"Metadata": "true"},
    )


_LOOKUPS: dict[str, Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]] = {
    "aws": _aws,
    "gcp": _gcp,
    "azure": _azure,
}


async def advertised_url(
    how: str, local_url: str, http: httpx.AsyncClient, *, explicit: str | None = None
) -> str:
    """``local_url`` (the gate's or the engine's, as seen on the node) with its host replaced
    by the address ``how`` names.

    Raises ``AddressUnavailable`` when the cloud has no such address and ``httpx.HTTPError``
    when its metadata service cannot be reached (the caller retries those).
    """
    if explicit:
        return explicit
    if how == "engine":
        return local_url
    if how not in ADVERTISE_CHOICES:
        raise ValueError(f"unknown address source {how!r}; one of {', '.join(ADVERTISE_CHOICES)}")
    cloud, network = how.split("-")
    resp = await _LOOKUPS[cloud](http, network)
    if resp.status_code == 404:
        raise AddressUnavailable(f"the {cloud} metadata service knows no {network} IP here")
    resp.raise_for_status()
    try:
        ip = ipaddress.ip_address(resp.text.strip())
    except ValueError:
        raise AddressUnavailable(f"the {cloud} metadata service gave no {network} IP") from None
    engine = urlsplit(local_url)
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    port = f":{engine.port}" if engine.port else ""
    return f"{engine.scheme}://{host}{port}"
