"""Helpers for the heartbeat tests: HEARTBEAT monitors through the API, their stored results and
state, and the deadline sweep run with a given "now"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from control_plane.db import Database
from control_plane.heartbeats.deadlines import sweep_heartbeats
from control_plane.heartbeats.pings import Ping, PingOutcome, record_ping
from control_plane.models import CheckResult, HeartbeatState
from tests.conftest import Account
from tests.monitor_tools import create_monitor


async def heartbeat_monitor(
    api: httpx.AsyncClient, account: Account, **fields: Any
) -> tuple[dict[str, Any], str]:
    """A HEARTBEAT monitor (every 300 s unless `fields` say otherwise) and its token."""
    monitor = await create_monitor(
        api, account, **{"name": "Nightly job", "type": "HEARTBEAT", "url": None, "interval": 300, **fields}
    )
    return monitor, monitor["heartbeatUrl"].rsplit("/", 1)[1]


async def results_of(db: Database, monitor_id: str) -> list[CheckResult]:
    """The monitor's stored results, oldest first."""
    async with db.session() as session:
        rows = await session.scalars(
            select(CheckResult)
            .where(CheckResult.monitor_id == monitor_id)
            .order_by(CheckResult.checked_at, CheckResult.id)
        )
        return list(rows)


async def state_of(db: Database, monitor_id: str) -> HeartbeatState | None:
    async with db.session() as session:
        return await session.get(HeartbeatState, monitor_id)


async def sweep(db: Database, now: datetime) -> int:
    async with db.session() as session:
        return await sweep_heartbeats(session, now=now)


async def ping(db: Database, token: str, now: datetime, kind: str = "success", **fields: Any) -> PingOutcome:
    """A ping straight through the service, at a chosen time (the API's clock only moves forward)."""
    async with db.session() as session:
        return await record_ping(session, token, Ping(kind=kind, **fields), now=now)
