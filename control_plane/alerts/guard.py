"""The outbound guard: alert URLs may not reach the server's own network (loopback, private,
link-local, reserved ... addresses) unless `alerts_allow_private_urls` is set. Checked twice: when a
channel is saved (`check_url`, a 400 naming the field) and when a connection is made
(`outbound_session`, whose resolver refuses the addresses a name resolves to *then*, so a name that
resolved to a public address at creation and to 127.0.0.1 later — DNS rebinding — is still refused).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from control_plane.alerts.notification import SendOutcome
from control_plane.core.errors import InvalidInput
from control_plane.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_EXTRA = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT (shared address space)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",  # reserved, incl. broadcast
    )
)
_V6_EXTRA = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # IPv4-compatible (deprecated) and unspecified
        "100::/64",  # discard
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fec0::/10",  # site local
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")

_RESOLVE_TIMEOUT_SECONDS = 5.0


class ForbiddenDestination(aiohttp.ClientConnectionError):
    """A connection to a forbidden address was refused. Sending again cannot help."""

    def __init__(self, host: str, address: str | None = None) -> None:
        self.host = host
        self.address = address
        where = host if address is None or address == host else f"{host} ({address})"
        super().__init__(f"refused: {where} is a private, loopback or reserved address")

    def __str__(self) -> str:
        return str(self.args[0])


def is_forbidden_address(ip: IPAddress) -> bool:
    """True for every address that is not plainly a public unicast one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_forbidden_address(ip.ipv4_mapped)
        if ip.sixtofour is not None and is_forbidden_address(ip.sixtofour):
            return True
        if ip.teredo is not None and any(is_forbidden_address(a) for a in ip.teredo):
            return True
        if ip in _NAT64:
            return is_forbidden_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _NAT64_LOCAL:
            return True
        if any(ip in net for net in _V6_EXTRA):
            return True
    elif any(ip in net for net in _V4_EXTRA):
        return True
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
        or not ip.is_global
    )


def parse_ip(host: str) -> IPAddress | None:
    host = host.strip("[]")
    if "%" in host:  # a zone index (fe80::1%eth0): link-local, whatever follows
        host = host.split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _refused(host: str, address: str | None = None) -> ForbiddenDestination:
    return ForbiddenDestination(host, address)


def check_address(host: str, settings: Settings) -> None:
    """Raise ForbiddenDestination if `host` is an IP literal that is forbidden (and not allowed)."""
    if settings.alerts_allow_private_urls:
        return
    ip = parse_ip(host)
    if ip is not None and is_forbidden_address(ip):
        raise _refused(host)


async def check_host(host: str, settings: Settings, *, field: str) -> None:
    """400 when `host` (an IP literal, or every address its name resolves to) is forbidden. A name
    that does not resolve now passes: the connect-time check refuses it if it ever resolves inward."""
    if settings.alerts_allow_private_urls:
        return
    ip = parse_ip(host)
    if ip is not None:
        if is_forbidden_address(ip):
            raise InvalidInput(f"{field}: {host} is a private, loopback or reserved address")
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), _RESOLVE_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError, UnicodeError):
        return
    for info in infos:
        address = parse_ip(str(info[4][0]))
        if address is None or is_forbidden_address(address):
            raise InvalidInput(
                f"{field}: {host} resolves to {info[4][0]}, a private, loopback or reserved address"
            )


async def check_url(
    url: str,
    settings: Settings,
    *,
    field: str,
    schemes: tuple[str, ...] = ("http", "https"),
    allow_credentials: bool = False,
) -> None:
    """400 `{field}: …` unless `url` is an absolute URL of one of `schemes`, without user:password@
    (unless allowed), whose host is not a forbidden address (see check_host)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError as exc:
        raise InvalidInput(f"{field}: not a valid URL ({exc})") from None
    del port
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        wanted = " or ".join(schemes)
        raise InvalidInput(f"{field}: must be an {wanted} URL")
    host = parts.hostname
    if not host:
        raise InvalidInput(f"{field}: must name a host")
    if (parts.username or parts.password) and not allow_credentials:
        raise InvalidInput(f"{field}: must not contain a user name or password")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise InvalidInput(f"{field}: must not contain spaces or control characters")
    await check_host(host, settings, field=field)


class GuardedResolver(AbstractResolver):
    """Resolves with aiohttp's default resolver, then refuses if any address is forbidden."""

    def __init__(self, settings: Settings, inner: AbstractResolver | None = None) -> None:
        self._settings = settings
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._settings.alerts_allow_private_urls:
            for result in results:
                ip = parse_ip(result["host"])
                if ip is None or is_forbidden_address(ip):
                    raise _refused(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


def _trace_config(settings: Settings) -> aiohttp.TraceConfig:
    """aiohttp does not ask the resolver about IP literals: check those before each request and
    before following each redirect."""
    trace = aiohttp.TraceConfig()

    async def on_start(_s: Any, _ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        check_address(params.url.raw_host or "", settings)

    async def on_redirect(_s: Any, _ctx: Any, params: aiohttp.TraceRequestRedirectParams) -> None:
        location = params.response.headers.get("Location")
        if location:
            target = params.url.join(URL(location))
            check_address(target.raw_host or "", settings)

    trace.on_request_start.append(on_start)
    trace.on_request_redirect.append(on_redirect)
    return trace


def outbound_session(
    settings: Settings, *, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """The session every alert sender uses. Call inside a running event loop; close it after.
    Requests to forbidden addresses raise ForbiddenDestination (not retryable) unless
    settings.alerts_allow_private_urls. `resolver` replaces the default DNS (tests)."""
    timeout = aiohttp.ClientTimeout(total=settings.alert_send_timeout_seconds)
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(settings, resolver))
    return aiohttp.ClientSession(
        timeout=timeout,
        connector=connector,
        trace_configs=[_trace_config(settings)],
        trust_env=False,
    )


def forbidden_outcome(exc: ForbiddenDestination) -> SendOutcome:
    """What a sender answers when the guard refused the destination."""
    return SendOutcome(delivered=False, error=str(exc), retryable=False)
