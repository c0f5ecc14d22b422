"""Fixtures for the control plane's agent side: tokens, registrations and a real gRPC endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from control_plane.agents.endpoint import AgentsEndpoint
from control_plane.db import Database
from control_plane.settings import Settings
from tests.agents_server.server_tools import AgentClient
from traxo_protocol.traxo.agent.v1.agent_pb2_grpc import AgentServiceStub


@pytest.fixture
async def endpoint(database: Database, settings: Settings) -> AsyncIterator[AgentsEndpoint]:
    served = await AgentsEndpoint.start(database, settings, ("127.0.0.1", 0))
    try:
        yield served
    finally:
        await served.stop()


@pytest.fixture
async def channel(endpoint: AgentsEndpoint) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{endpoint.port}") as open_channel:
        yield open_channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> AgentServiceStub:
    return AgentServiceStub(channel)


@pytest.fixture
def client(stub: AgentServiceStub, endpoint: AgentsEndpoint) -> AgentClient:
    return AgentClient(stub, endpoint.coordinator)
