"""Incidents, their timeline and events, and maintenance windows as rows, for tests of what reads
and handles them (the engine that writes them in production is control_plane/incidents/)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from control_plane.core.ids import new_id
from control_plane.db import Database
from control_plane.models import Incident, IncidentUpdate, MaintenanceWindow


async def insert_incident(
    db: Database,
    org_id: str,
    monitor_id: str,
    started_at: datetime,
    resolved_at: datetime | None = None,
    **fields: Any,
) -> Incident:
    """An incident as the engine opens one: kind DOWN, a cause, its regions, status investigating,
    and the engine's own "opened" entry on its timeline."""
    values: dict[str, Any] = {
        "id": new_id("inc"),
        "org_id": org_id,
        "monitor_id": monitor_id,
        "kind": "DOWN",
        "started_at": started_at,
        "resolved_at": resolved_at,
        "cause": "Connection timeout",
        "regions": ["us-east-1"],
        "status": "resolved" if resolved_at else "investigating",
        "updated_at": resolved_at or started_at,
        **fields,
    }
    incident = Incident(**values)
    opened = IncidentUpdate(
        id=new_id("iu"),
        incident_id=incident.id,
        org_id=org_id,
        kind="system",
        status="investigating",
        message=f"Down: {incident.cause}",
        author_id=None,
        created_at=started_at,
    )
    async with db.session() as session:
        session.add(incident)
        await session.flush()
        session.add(opened)
        await session.commit()
    return incident


async def insert_window(
    db: Database, org_id: str, starts_at: datetime, ends_at: datetime, monitor_id: str | None = None
) -> MaintenanceWindow:
    window = MaintenanceWindow(
        id=new_id("mw"),
        org_id=org_id,
        monitor_id=monitor_id,
        title="Planned maintenance",
        starts_at=starts_at,
        ends_at=ends_at,
        created_at=starts_at,
        updated_at=starts_at,
    )
    async with db.session() as session:
        session.add(window)
        await session.commit()
    return window
