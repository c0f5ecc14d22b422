"""The agents' side of a control-plane process: coordinator plus gRPC server, started and stopped together."""

from __future__ import annotations

import logging

import grpc

from control_plane.agents.coordinator import AgentCoordinator
from control_plane.agents.server import start_grpc_server
from control_plane.db import Database
from control_plane.settings import Settings

log = logging.getLogger(__name__)


class AgentsEndpoint:
    def __init__(self, coordinator: AgentCoordinator, server: grpc.aio.Server, port: int) -> None:
        self.coordinator = coordinator
        self.server = server
        self.port = port

    @classmethod
    async def start(cls, db: Database, settings: Settings, address: tuple[str, int]) -> AgentsEndpoint:
        coordinator = AgentCoordinator(db, settings)
        await coordinator.start()
        server, port = await start_grpc_server(coordinator, settings, *address)
        return cls(coordinator, server, port)

    async def stop(self) -> None:
        # Streams end with UNAVAILABLE; agents reconnect (to another replica, or to us after restart).
        await self.server.stop(grace=2)
        await self.coordinator.stop()
