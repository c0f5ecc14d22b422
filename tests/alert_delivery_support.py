"""Rows for alert delivery tests: channels, and incidents opened and resolved the way the engine
writes them (control_plane.incidents.changes), events in the outbox included."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from control_plane.alerts.outbox import dispatch_events
from control_plane.core.ids import new_id
from control_plane.db import Database
from control_plane.incidents.changes import MonitorRef, OpenIncident, open_incident, resolve_incident
from control_plane.models import Incident, IncidentEvent, Monitor
from control_plane.models.alerts import AlertChannel, AlertDelivery, DeliveryAttempt


async def insert_channel(
    db: Database,
    org_id: str,
    *,
    type: str = "WEBHOOK",
    config: dict[str, Any] | None = None,
    is_active: bool = True,
    created_at: datetime,
) -> AlertChannel:
    channel = AlertChannel(
        id=new_id("ac"),
        org_id=org_id,
        name=f"{type.lower()} channel",
        type=type,
        config=config if config is not None else {"url": "http://127.0.0.1:9/hook"},
        is_active=is_active,
        created_at=created_at,
        updated_at=created_at,
    )
    async with db.session() as session:
        session.add(channel)
        await session.commit()
    return channel


def ref(monitor: Monitor) -> MonitorRef:
    return MonitorRef(monitor.id, monitor.org_id, monitor.name, monitor.url, monitor.type)


async def open_down(
    db: Database,
    monitor: Monitor,
    at: datetime,
    *,
    suppressed_by: str | None = None,
    in_maintenance: bool = False,
) -> str:
    async with db.session() as session:
        incident_id = await open_incident(
            session,
            ref(monitor),
            kind="DOWN",
            started_at=at,
            cause="Connection refused",
            regions=("us-east-1",),
            suppressed_by=suppressed_by,
            in_maintenance=in_maintenance,
            now=at,
        )
        await session.commit()
    return incident_id


async def resolve(db: Database, monitor: Monitor, incident_id: str, at: datetime) -> None:
    async with db.session() as session:
        incident = await session.get_one(Incident, incident_id)
        open_ = OpenIncident(
            incident.id,
            incident.kind,
            incident.started_at,
            tuple(incident.regions),
            incident.flapping,
            incident.suppressed_by,
            incident.in_maintenance,
        )
        assert await resolve_incident(
            session, ref(monitor), open_, at=at, message="Recovered", in_maintenance=False, now=at
        )
        await session.commit()


async def dispatch(db: Database, now: datetime) -> int:
    async with db.session() as session:
        return await dispatch_events(session, now=now)


async def deliveries(db: Database) -> list[AlertDelivery]:
    async with db.session() as session:
        return list(await session.scalars(select(AlertDelivery).order_by(AlertDelivery.created_at)))


async def attempts(db: Database, delivery_id: str) -> list[DeliveryAttempt]:
    async with db.session() as session:
        return list(
            await session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.attempted_at)
            )
        )


async def events(db: Database) -> list[IncidentEvent]:
    async with db.session() as session:
        return list(await session.scalars(select(IncidentEvent).order_by(IncidentEvent.occurred_at)))


async def incident(db: Database, incident_id: str) -> Incident:
    async with db.session() as session:
        return await session.get_one(Incident, incident_id)
