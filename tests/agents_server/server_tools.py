"""Helpers for the agent-side server tests: tokens, grants, result messages and a thin gRPC client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import insert, inspect, select

from agent.ids import new_result_id
from control_plane.agents import tokens
from control_plane.agents.assigner import rendezvous_weight
from control_plane.agents.coordinator import AgentCoordinator
from control_plane.agents.registry import member_key
from control_plane.core.ids import new_id
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import AssignmentGrant, Monitor
from control_plane.settings import Settings
from tests.factories import monitor_row
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb
from traxo_protocol.traxo.agent.v1.agent_pb2_grpc import AgentServiceStub

REGION = "us-east-1"
ALL_CAPABILITIES = ("http", "tcp", "icmp", "dns", "ssl", "browser")


async def create_token(
    db: Database, settings: Settings, region: str = REGION, org: str | None = None
) -> tuple[str, str]:
    """(token id, raw token)."""
    async with db.session() as session:
        token, raw = await tokens.create_token(
            session, region=region, org=org, configured_regions=settings.regions, now=utcnow()
        )
        return token.id, raw


async def insert_monitors(db: Database, org_id: str, count: int, **fields: object) -> list[str]:
    """`count` monitors of `org_id` in one multi-row insert (tens of thousands in seconds)."""
    row = monitor_row(org_id, **fields)
    template = {attribute.key: getattr(row, attribute.key) for attribute in inspect(Monitor).column_attrs}
    rows = [{**template, "id": new_id("mon")} for _ in range(count)]
    async with db.session() as session:
        await session.execute(insert(Monitor), rows)
        await session.commit()
    return [row["id"] for row in rows]


async def revoke_token(db: Database, token_id: str) -> None:
    async with db.session() as session:
        await tokens.revoke_token(session, token_id, now=utcnow())


async def active_grants(db: Database, region: str = REGION) -> dict[str, tuple[str, int]]:
    """monitor id -> (member key, epoch) of its unrevoked grant in `region`."""
    async with db.session() as session:
        rows = await session.execute(
            select(AssignmentGrant.monitor_id, AssignmentGrant.member_key, AssignmentGrant.epoch).where(
                AssignmentGrant.region == region, AssignmentGrant.revoked_at.is_(None)
            )
        )
        grants: dict[str, tuple[str, int]] = {}
        for monitor_id, key, epoch in rows.all():
            assert monitor_id not in grants, f"{monitor_id} has two live grants in {region}"
            grants[monitor_id] = (key, epoch)
        return grants


async def grant_history(db: Database, monitor_id: str, region: str = REGION) -> list[AssignmentGrant]:
    async with db.session() as session:
        return list(
            await session.scalars(
                select(AssignmentGrant)
                .where(AssignmentGrant.monitor_id == monitor_id, AssignmentGrant.region == region)
                .order_by(AssignmentGrant.epoch)
            )
        )


def name_that_wins(token_id: str, monitor_id: str, against: str, *, wins: bool = True) -> str:
    """An agent name whose member key beats (or with wins=False, loses to) `against` for this monitor."""
    for index in range(1000):
        name = f"{'winner' if wins else 'loser'}-{index}"
        beats = rendezvous_weight(monitor_id, member_key(token_id, name)) > rendezvous_weight(
            monitor_id, against
        )
        if beats == wins:
            return name
    raise AssertionError("no such name in 1000 tries")


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def check_result(
    monitor_id: str,
    epoch: int,
    *,
    scheduled_at: datetime | None = None,
    region: str = REGION,
    **fields: Any,
) -> pb.CheckResult:
    scheduled = scheduled_at or datetime.now(UTC) - timedelta(seconds=1)
    values: dict[str, Any] = {
        "result_id": new_result_id(),
        "monitor_id": monitor_id,
        "epoch": epoch,
        "region": region,
        "scheduled_at": stamp(scheduled),
        "started_at": stamp(scheduled + timedelta(milliseconds=5)),
        "finished_at": stamp(scheduled + timedelta(milliseconds=80)),
        "status": pb.UP,
        "response_time_ms": 75.0,
        "status_code": 200,
        "type": "HTTP",
        "total_ms": 75.0,
        **fields,
    }
    return pb.CheckResult(**values)


class AgentClient:
    """The generated stub with a token in its metadata, plus the waits the tests need."""

    def __init__(self, stub: AgentServiceStub, coordinator: AgentCoordinator | None = None) -> None:
        self.stub = stub
        self.coordinator = coordinator

    @staticmethod
    def metadata(raw_token: str | None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {raw_token}"),) if raw_token is not None else ()

    async def register(
        self,
        raw_token: str,
        name: str = "agent-1",
        region: str = REGION,
        capabilities: Sequence[str] = ALL_CAPABILITIES,
    ) -> str:
        response = await self.stub.Register(
            pb.RegisterRequest(name=name, region=region, version="0.1.0", capabilities=list(capabilities)),
            metadata=self.metadata(raw_token),
            timeout=10,
        )
        if self.coordinator is not None:  # registration rebalances in the background
            await self.coordinator.settle()
        return str(response.agent_id)

    def watch(self, raw_token: str, agent_id: str, known_version: int = 0) -> Any:
        return self.stub.WatchAssignments(
            pb.WatchAssignmentsRequest(agent_id=agent_id, known_version=known_version),
            metadata=self.metadata(raw_token),
        )

    async def send(
        self, raw_token: str, batches: Sequence[pb.ResultBatch], within: float = 10
    ) -> list[pb.ResultAck]:
        """One StreamResults call: each batch, waiting for its ack before the next."""
        queue: asyncio.Queue[pb.ResultBatch | None] = asyncio.Queue()

        async def requests() -> AsyncIterator[pb.ResultBatch]:
            while (batch := await queue.get()) is not None:
                yield batch

        call = self.stub.StreamResults(requests(), metadata=self.metadata(raw_token))
        acks = []
        try:
            for batch in batches:
                await queue.put(batch)
                acks.append(await asyncio.wait_for(call.read(), within))
        finally:
            await queue.put(None)
            call.cancel()
        return acks


async def next_update(call: Any, within: float = 5) -> pb.AssignmentUpdate:
    update = await asyncio.wait_for(call.read(), within)
    assert update is not grpc.aio.EOF, "the assignment stream ended"
    return update


async def next_change(call: Any, within: float = 5) -> pb.Change:
    update = await next_update(call, within)
    assert update.WhichOneof("update") == "change", update
    return update.change
