"""Fixtures for the check tests: real peers on loopback, port 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import trustme

from agent.checks.browser_pool import CHROMIUM_ENV, BrowserPool
from tests.checks.dns_server import LoopbackDnsServer, build_zone
from tests.checks.http_target import Target, serve_target
from tests.checks.web_site import LocalSite
from tests.tools import require_program


@pytest.fixture
async def dns_server() -> AsyncIterator[LoopbackDnsServer]:
    server = LoopbackDnsServer(build_zone())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serve_target() as target:
        yield target


@pytest.fixture
async def https_target(tls_ca: trustme.CA) -> AsyncIterator[Target]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    async with serve_target(server_context) as target:
        yield target


@pytest.fixture
def client_tls_context(tls_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    tls_ca.configure_trust(context)
    return context


@pytest.fixture
async def tcp_listener() -> AsyncIterator[int]:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that nothing listens on: bound (so nothing else takes it) but never listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def serve_tls(tmp_path: Path) -> Callable[[bytes, bytes], contextlib.AbstractAsyncContextManager[int]]:
    """Serve TLS on 127.0.0.1 with the given PEM chain (leaf first) and key; yields the port."""

    @contextlib.asynccontextmanager
    async def serve(chain_pem: bytes, key_pem: bytes) -> AsyncIterator[int]:
        chain_file, key_file = tmp_path / "chain.pem", tmp_path / "key.pem"
        chain_file.write_bytes(chain_pem)
        key_file.write_bytes(key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain_file, key_file)

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=context)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()
            await server.wait_closed()

    return serve


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return require_program("chromium", os.environ.get(CHROMIUM_ENV))


@pytest.fixture(scope="session")
async def browser_pool(chromium_path: str) -> AsyncIterator[BrowserPool]:
    """One browser for the browser tests, as the agent has one for all its checks."""
    pool = BrowserPool(chromium_path, max_concurrent=2)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def web_site() -> AsyncIterator[LocalSite]:
    site = LocalSite()
    await site.start()
    yield site
    await site.stop()
