"""The outbound guard: forbidden addresses, the check at save time, the refusal at connect time
(IP literals, names, redirects, DNS rebinding) against a real local aiohttp server."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, web
from aiohttp.abc import AbstractResolver, ResolveResult

from control_plane.alerts.guard import (
    ForbiddenDestination,
    _trace_config,
    check_url,
    forbidden_outcome,
    is_forbidden_address,
    outbound_session,
)
from control_plane.core.errors import InvalidInput
from control_plane.settings import Settings

FORBIDDEN = [
    "127.0.0.1",
    "127.255.255.254",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # CGNAT
    "100.127.255.255",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",  # broadcast
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",  # link local
    "fc00::1",  # unique local
    "fd12:3456::1",
    "fec0::1",  # site local
    "ff02::1",  # multicast
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2001:db8::1",  # documentation
]
ALLOWED = ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address: str) -> None:
    assert not is_forbidden_address(ipaddress.ip_address(address))


STRICT = Settings(database_url="sqlite+aiosqlite://", redis_url=None)
OPEN = Settings(database_url="sqlite+aiosqlite://", redis_url=None, alerts_allow_private_urls=True)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/hook", "config.url: 127.0.0.1 is a private"),
        ("http://[::1]:8080/hook", "config.url: ::1 is a private"),
        ("https://[::ffff:127.0.0.1]/", "config.url: ::ffff:127.0.0.1 is a private"),
        ("http://169.254.169.254/latest/meta-data", "config.url: 169.254.169.254 is a private"),
        ("http://localhost:9000/", "config.url: localhost resolves to"),
        ("ftp://example.com/x", "config.url: must be an http or https URL"),
        ("file:///etc/passwd", "config.url: must be an http or https URL"),
        ("example.com/hook", "config.url: must be an http or https URL"),
        ("http:///nohost", "config.url: must name a host"),
        ("https://user:pw@example.com/", "config.url: must not contain a user name or password"),
        ("http://example.com:99999/", "config.url: not a valid URL"),
        ("http://example.com/a b", "config.url: must not contain spaces"),
    ],
)
async def test_check_url_refuses(url: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await check_url(url, STRICT, field="config.url")
    assert caught.value.message.startswith(message), caught.value.message


async def test_check_url_https_only() -> None:
    with pytest.raises(InvalidInput, match=r"^config.webhookUrl: must be an https URL$"):
        await check_url(
            "http://hooks.slack.com/services/x", STRICT, field="config.webhookUrl", schemes=("https",)
        )


async def test_check_url_accepts() -> None:
    # A public literal, and a name that does not resolve here (refused at connect time if it ever
    # resolves inward).
    await check_url("https://93.184.215.14/hook", STRICT, field="config.url")
    await check_url("https://hooks.slack.com.invalid/services/x", STRICT, field="config.url")
    # Allowed by the setting: loopback literal and name.
    await check_url("http://127.0.0.1:8080/hook", OPEN, field="config.url")
    await check_url("http://localhost:8080/hook", OPEN, field="config.url")


class Receiver:
    def __init__(self) -> None:
        self.hits: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_get("/redirect", self._redirect)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def _hook(self, request: web.Request) -> web.Response:
        self.hits.append(await request.text())
        return web.Response(status=204)

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{self.port}/hook")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


class FixedResolver(AbstractResolver):
    """A DNS that answers from a table which a test can change (rebinding)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return [
            {
                "hostname": host,
                "host": self.table[host],
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


async def test_ip_literal_loopback_refused_at_connect(receiver: Receiver) -> None:
    async with outbound_session(STRICT) as http:
        with pytest.raises(ForbiddenDestination) as caught:
            await http.post(f"http://127.0.0.1:{receiver.port}/hook", data="x")
    assert receiver.hits == []
    outcome = forbidden_outcome(caught.value)
    assert outcome.delivered is False and outcome.retryable is False
    assert outcome.error is not None and "127.0.0.1" in outcome.error


async def test_name_resolving_to_loopback_refused_at_connect(receiver: Receiver) -> None:
    async with outbound_session(STRICT) as http:
        with pytest.raises(ForbiddenDestination, match="localhost"):
            await http.post(f"http://localhost:{receiver.port}/hook", data="x")
    assert receiver.hits == []


async def test_delivered_when_allowed(receiver: Receiver) -> None:
    async with outbound_session(OPEN) as http:
        async with http.post(f"http://127.0.0.1:{receiver.port}/hook", data="one") as response:
            assert response.status == 204
        async with http.post(f"http://localhost:{receiver.port}/hook", data="two") as response:
            assert response.status == 204
    assert receiver.hits == ["one", "two"]


async def test_dns_rebinding_refused_at_connect(receiver: Receiver) -> None:
    # At save time the name resolves to a public address; by the time of sending it answers
    # 127.0.0.1. The connect-time resolver refuses it.
    dns = FixedResolver({"rebind.test": "93.184.215.14"})
    await check_url(f"http://rebind.test:{receiver.port}/hook", STRICT, field="config.url")
    dns.table["rebind.test"] = "127.0.0.1"
    async with outbound_session(STRICT, resolver=dns) as http:
        with pytest.raises(ForbiddenDestination, match=r"rebind.test \(127.0.0.1\)"):
            await http.post(f"http://rebind.test:{receiver.port}/hook", data="x")
    assert dns.asked == ["rebind.test"]
    assert receiver.hits == []
    # The same resolver, allowed: delivered to the rebound address.
    async with outbound_session(OPEN, resolver=dns) as http:
        async with http.post(f"http://rebind.test:{receiver.port}/hook", data="y") as response:
            assert response.status == 204
    assert receiver.hits == ["y"]


async def test_a_redirect_to_a_forbidden_ip_literal_is_refused(receiver: Receiver) -> None:
    # The first hop must be reachable for the redirect to happen, so this session resolves names
    # without the guard (plain DNS) and keeps only the guard's request checks: "localhost" is a
    # name (not checked by them), the redirect's target 127.0.0.1 is a literal (checked).
    async with ClientSession(trace_configs=[_trace_config(STRICT)]) as http:
        with pytest.raises(ForbiddenDestination, match=r"127\.0\.0\.1"):
            await http.get(f"http://localhost:{receiver.port}/redirect")
    assert receiver.hits == []
