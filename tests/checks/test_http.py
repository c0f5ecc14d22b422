"""HTTP checks against real local servers: status, keyword, assertions, redirects, TLS, timings."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from agent.checks.base import CheckSpec, ErrorKind, Status
from agent.checks.http import HttpClient
from tests.checks.http_target import Target


def spec(url: str, **overrides: Any) -> CheckSpec:
    values: dict[str, Any] = dict(
        monitor_id="mon_test", type="HTTP", target=url, interval_s=60, timeout_s=5.0
    )
    values.update(overrides)
    return CheckSpec(**values)


@pytest.fixture
async def client(client_tls_context: ssl.SSLContext) -> AsyncIterator[HttpClient]:
    client = HttpClient(ssl_context=client_tls_context)
    yield client
    await client.aclose()


async def test_it_reports_up_with_measured_phases(client: HttpClient, target: Target) -> None:
    result = await client.run(spec(f"{target.url}/ok"))
    assert result.status is Status.UP, result.error_message
    assert result.status_code == 200
    timings = result.timings
    assert timings.dns is None  # an IP literal is not resolved
    assert timings.tcp is not None and timings.tls is None
    assert timings.ttfb is not None and timings.download is not None
    assert timings.size == len(b"all systems operational")
    assert timings.total == result.response_time_ms
    assert timings.tcp + timings.ttfb + timings.download <= timings.total + 0.5


async def test_it_opens_a_fresh_connection_per_check(client: HttpClient, target: Target) -> None:
    first = await client.run(spec(f"{target.url}/ok"))
    second = await client.run(spec(f"{target.url}/ok"))
    assert first.timings.tcp is not None and second.timings.tcp is not None


async def test_ttfb_and_download_are_measured_against_a_slow_server(
    client: HttpClient, target: Target
) -> None:
    result = await client.run(spec(f"{target.url}/slow?headers=0.15&body=0.1"))
    assert result.status is Status.UP
    assert result.timings.ttfb is not None and 140 <= result.timings.ttfb < 1000
    assert result.timings.download is not None and 80 <= result.timings.download < 1000


class SlowResolver(AbstractResolver):
    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        await asyncio.sleep(0.1)
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        pass


async def test_dns_is_timed_apart(target: Target) -> None:
    client = HttpClient(resolver=SlowResolver())
    try:
        port = target.url.rsplit(":", 1)[1]
        result = await client.run(spec(f"http://slow-dns.test:{port}/ok"))
    finally:
        await client.aclose()
    assert result.status is Status.UP, result.error_message
    assert result.timings.dns is not None and 100 <= result.timings.dns < 1000
    assert result.timings.tcp is not None and result.timings.tcp < 100


async def test_tls_handshake_is_timed_apart_from_tcp(client: HttpClient, https_target: Target) -> None:
    # A proxy that accepts at once but holds the client's first bytes (its ClientHello) for 200 ms:
    # the delay must land in tls, not in tcp.
    upstream_port = int(https_target.url.rsplit(":", 1)[1])

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
            first = True
            while data := await src.read(65536):
                if first and delay:
                    await asyncio.sleep(delay)
                first = False
                dst.write(data)
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, 0.2), pipe(up_reader, writer, 0), return_exceptions=True)

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    try:
        result = await client.run(spec(f"https://localhost:{port}/ok"))
    finally:
        proxy.close()
    assert result.status is Status.UP, result.error_message
    assert result.timings.tcp is not None and result.timings.tcp < 100
    assert result.timings.tls is not None and 180 <= result.timings.tls < 1500


async def test_https_with_a_trusted_certificate(client: HttpClient, https_target: Target) -> None:
    result = await client.run(spec(f"{https_target.url}/ok"))
    assert result.status is Status.UP, result.error_message
    assert result.timings.tls is not None and result.timings.tcp is not None


async def test_untrusted_certificate_is_a_tls_failure(https_target: Target) -> None:
    client = HttpClient()  # system trust store: the test CA is unknown
    try:
        result = await client.run(spec(f"{https_target.url}/ok"))
        insecure = await client.run(spec(f"{https_target.url}/ok", config={"verifyTls": False}))
    finally:
        await client.aclose()
    assert result.status is Status.DOWN and result.error_kind is ErrorKind.TLS
    assert "localhost" in (result.error_message or "")
    assert insecure.status is Status.UP


async def test_unexpected_status_names_expected_and_actual(client: HttpClient, target: Target) -> None:
    result = await client.run(spec(f"{target.url}/status/503"))
    assert result.status is Status.DOWN and result.error_kind is ErrorKind.HTTP_STATUS
    assert result.status_code == 503
    assert result.error_message == "expected a 2xx status, got 503"
    exact = await client.run(spec(f"{target.url}/status/404", expected_status=404))
    assert exact.status is Status.UP


async def test_keyword(client: HttpClient, target: Target) -> None:
    assert (await client.run(spec(f"{target.url}/ok", expected_keyword="operational"))).status is Status.UP
    missing = await client.run(spec(f"{target.url}/ok", expected_keyword="outage"))
    assert missing.error_kind is ErrorKind.KEYWORD and "'outage'" in (missing.error_message or "")


async def test_json_path_assertion_failure_names_values(client: HttpClient, target: Target) -> None:
    config = {
        "assertions": [
            {"type": "json_path", "path": "$.data.count", "operator": "equals", "value": "42"},
            {"type": "json_path", "path": "$.data.status", "operator": "equals", "value": "degraded"},
        ]
    }
    result = await client.run(spec(f"{target.url}/json", config=config))
    assert result.status is Status.DOWN and result.error_kind is ErrorKind.ASSERTION
    assert result.error_message == (
        "assertion 2 (json_path $.data.status equals) failed: expected equals 'degraded', got 'ok'"
    )


async def test_method_headers_and_body_are_sent(client: HttpClient, target: Target) -> None:
    config = {
        "method": "POST",
        "headers": {"X-Probe": "yes"},
        "body": "ping",
        "assertions": [
            {"type": "json_path", "path": "$.method", "operator": "equals", "value": "POST"},
            {"type": "json_path", "path": "$.body", "operator": "equals", "value": "ping"},
            {"type": "json_path", "path": "$.header", "operator": "equals", "value": "yes"},
        ],
    }
    result = await client.run(spec(f"{target.url}/echo", config=config))
    assert result.status is Status.UP, result.error_message


async def test_redirects_are_followed_or_not(client: HttpClient, target: Target) -> None:
    followed = await client.run(spec(f"{target.url}/redirect/3"))
    assert followed.status is Status.UP and followed.details["redirects"] == 3
    stopped = await client.run(spec(f"{target.url}/redirect/3", config={"followRedirects": False}))
    assert stopped.status is Status.DOWN and stopped.status_code == 302
    too_many = await client.run(spec(f"{target.url}/redirect/12"))
    assert too_many.status is Status.DOWN and "redirects" in (too_many.error_message or "")


async def test_timeout_says_which_phase(client: HttpClient, target: Target) -> None:
    result = await client.run(spec(f"{target.url}/slow?headers=2", timeout_s=0.2))
    assert result.status is Status.DOWN and result.error_kind is ErrorKind.TIMEOUT
    assert result.error_message == "timed out after 0.2s while waiting for the response"
    assert 200 <= result.response_time_ms < 1000


async def test_refused_connection(client: HttpClient, refused_port: int) -> None:
    result = await client.run(spec(f"http://127.0.0.1:{refused_port}/"))
    assert result.status is Status.DOWN and result.error_kind is ErrorKind.CONNECTION
    assert f"127.0.0.1:{refused_port}" in (result.error_message or "")
    assert (result.error_message or "").endswith(": Connection refused"), result.error_message


async def test_unresolvable_name_is_a_dns_failure(client: HttpClient) -> None:
    result = await client.run(spec("http://does-not-exist.invalid/"))
    assert result.status is Status.DOWN and result.error_kind is ErrorKind.DNS
    assert result.timings.dns is not None
