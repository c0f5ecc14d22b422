"""Shared agent fixtures: real local peers on port 0 (HTTP, HTTPS, TCP) and a fake control plane."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import trustme
from agent_fake_control_plane import FakeControlPlane
from agent_peers import Target, target_app
from aiohttp import web

from agent.settings import AgentSettings


async def _serve(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    target = Target()
    runner, port = await _serve(target_app(target))
    target.url = f"http://127.0.0.1:{port}"
    yield target
    await runner.cleanup()


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_target(tls_ca: trustme.CA) -> AsyncIterator[Target]:
    target = Target()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    runner, port = await _serve(target_app(target), server_context)
    target.url = f"https://localhost:{port}"
    yield target
    await runner.cleanup()


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
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
async def control_plane() -> AsyncIterator[FakeControlPlane]:
    fake = FakeControlPlane(token="good-token")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def agent_settings(tmp_path: Path, control_plane: FakeControlPlane) -> Callable[..., AgentSettings]:
    def make(**overrides: object) -> AgentSettings:
        values: dict[str, object] = dict(
            control_plane=f"127.0.0.1:{control_plane.port}",
            token="good-token",
            region="eu-test",
            name="agent-under-test",
            metrics_host="127.0.0.1",
            metrics_port=0,
            spool_path=tmp_path / "spool.sqlite3",
            shutdown_deadline_s=2.0,
            reconnect_min_s=0.05,
            reconnect_max_s=0.2,
        )
        values.update(overrides)
        return AgentSettings(**values)  # type: ignore[arg-type]

    return make
