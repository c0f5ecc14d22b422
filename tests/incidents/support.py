"""Results fed to the engine as agents deliver them (one batch each), and what it wrote."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from control_plane.db import Database
from control_plane.models import Incident, IncidentEvent, IncidentUpdate, Monitor, MonitorState
from control_plane.results import ResultIn
from tests.factories import insert_monitor, record, result

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def http_monitor(db: Database, org_id: str, **fields: Any) -> Monitor:
    return await insert_monitor(db, org_id, **{"interval": 60, "regions": ["us-east-1"], **fields})


def results_for(
    monitor_id: str,
    pattern: str,
    *,
    start: datetime = T0,
    step: timedelta = timedelta(seconds=60),
    region: str = "us-east-1",
    error: str = "Expected status 200, got 503",
    **fields: Any,
) -> list[ResultIn]:
    """One result per letter: U up, D down, checked `step` apart from `start`."""
    out = []
    for i, letter in enumerate(pattern):
        at = start + step * i
        down = letter == "D"
        out.append(
            result(
                monitor_id,
                at,
                status="DOWN" if down else "UP",
                region=region,
                scheduled_at=at,
                error_kind="http_status" if down else None,
                error_message=error if down else None,
                **fields,
            )
        )
    return out


async def feed(db: Database, results: Sequence[ResultIn]) -> None:
    """Each result its own batch, in the order given (as an agent delivers them)."""
    for one in results:
        await record(db, [one])


async def incidents_of(db: Database, monitor_id: str) -> list[Incident]:
    async with db.session() as session:
        query = select(Incident).where(Incident.monitor_id == monitor_id).order_by(Incident.started_at)
        return list(await session.scalars(query))


async def events_of(db: Database, monitor_id: str) -> list[IncidentEvent]:
    async with db.session() as session:
        query = select(IncidentEvent).where(IncidentEvent.monitor_id == monitor_id)
        return list(await session.scalars(query.order_by(IncidentEvent.occurred_at, IncidentEvent.type)))


async def timeline_of(db: Database, incident_id: str) -> list[IncidentUpdate]:
    async with db.session() as session:
        query = select(IncidentUpdate).where(IncidentUpdate.incident_id == incident_id)
        return list(await session.scalars(query.order_by(IncidentUpdate.created_at)))


async def state_of(db: Database, monitor_id: str) -> MonitorState | None:
    async with db.session() as session:
        return await session.get(MonitorState, monitor_id)
