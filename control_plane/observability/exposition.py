"""Who may read /metrics, and its text: the process's instruments, then what the scrape read from
the database (when it read it).

The metrics name every tenant's monitors, so they are not public. With TRAXO_METRICS_TOKEN set a
scrape must send `Authorization: Bearer <token>` (compared in constant time); unset, only clients
on loopback are answered, and not those a proxy forwarded: a reverse proxy or a mesh's sidecar on
the same host (Istio's connects from 127.0.0.6) makes every client look like loopback, but says so
in a forwarding header. The API's route and `traxo worker`'s own server apply the same rule.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest

from control_plane.observability.database import DatabaseCollector, DatabaseState, render_probes
from control_plane.observability.metrics import REGISTRY

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes; Prometheus 2 reads it
TOKEN_REQUIRED = "Missing or wrong metrics token: send 'Authorization: Bearer <TRAXO_METRICS_TOKEN>'"
LOOPBACK_ONLY = (
    "Metrics are answered to loopback clients only while TRAXO_METRICS_TOKEN is unset: set it, and "
    "scrape with 'Authorization: Bearer <TRAXO_METRICS_TOKEN>'"
)
# A request carrying one of these came through a proxy: its loopback address is the proxy's.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int  # 401: the token is missing or wrong; 403: no token is set and the client is remote
    message: str


def refusal(
    token: str | None, authorization: str | None, client_host: str | None, *, forwarded: bool = False
) -> Refusal | None:
    """None when the scrape may be answered, else why not. `forwarded`: the request carries one of
    FORWARDING_HEADERS."""
    if token is not None:
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        offered = credentials.strip().encode() if scheme.lower() == "bearer" else b""
        # compare_digest on bytes of any length: no early exit on the first different character.
        if not offered or not hmac.compare_digest(offered, token.encode()):
            return Refusal(401, TOKEN_REQUIRED)
        return None
    return None if is_loopback(client_host) and not forwarded else Refusal(403, LOOPBACK_ONLY)


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6 (a dual-stack socket's view)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def render(state: DatabaseState | None = None, now: datetime | None = None) -> bytes:
    """The exposition (Prometheus text format 0.0.4): the process's registry, then `state`."""
    body = generate_latest(REGISTRY)
    if state is None or now is None:
        return body
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(DatabaseCollector(state, now))
    probes = render_probes(state.probes).encode() if state.error is None else b""
    return body + generate_latest(scraped) + probes
