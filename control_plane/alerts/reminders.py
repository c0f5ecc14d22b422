"""Reminders: a monitor's `config.reminderIntervalMinutes` re-notifies its channels while a DOWN or
NO_DATA incident stays open, until someone acknowledges it (or it resolves).

Each reminder is an "incident.reminder" event in the outbox (fanned out like any other), written
with the incident's `reminded_at` and `reminders` moved on by compare-and-set, so two replicas
running this at once write one. None while the monitor is in maintenance, none for an incident
suppressed by a dependency or never alerted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.alerts.outbox import incident_payload
from control_plane.core.ids import new_id
from control_plane.maintenance import monitors_in_maintenance
from control_plane.models import Incident, IncidentEvent, Monitor
from control_plane.models.incidents import KIND_DOWN, KIND_NO_DATA

REMINDER = "incident.reminder"
_MIN_INTERVAL = timedelta(minutes=1)


def _interval(config: dict[str, object] | None) -> timedelta | None:
    minutes = (config or {}).get("reminderIntervalMinutes")
    if isinstance(minutes, int) and not isinstance(minutes, bool) and minutes >= 1:
        return timedelta(minutes=minutes)
    return None


async def remind(session: AsyncSession, *, now: datetime, limit: int = 1000) -> int:
    """Write the reminders due at `now` and commit; returns how many were written."""
    rows = list(
        await session.execute(
            select(Incident, Monitor.name, Monitor.url, Monitor.type, Monitor.config)
            .join(Monitor, Monitor.id == Incident.monitor_id)
            .where(
                Incident.resolved_at.is_(None),
                Incident.kind.in_((KIND_DOWN, KIND_NO_DATA)),
                Incident.acknowledged_at.is_(None),
                Incident.suppressed_by.is_(None),
                Incident.alerted_at.is_not(None),
                # No interval is under a minute: skip what was alerted or reminded within one.
                Incident.alerted_at <= now - _MIN_INTERVAL,
                or_(Incident.reminded_at.is_(None), Incident.reminded_at <= now - _MIN_INTERVAL),
            )
            .order_by(Incident.started_at)
            .limit(limit)
        )
    )
    due = []
    for row in rows:
        incident: Incident = row.Incident
        interval = _interval(row.config)
        last = max(incident.alerted_at or incident.started_at, incident.reminded_at or incident.started_at)
        if interval is not None and now >= last + interval:
            due.append(row)
    if not due:
        return 0
    held = await monitors_in_maintenance(
        session, [(row.Incident.monitor_id, row.Incident.org_id) for row in due], now
    )
    written = 0
    for row in due:
        incident = row.Incident
        if incident.monitor_id in held:
            continue
        count = incident.reminders + 1
        moved = await session.execute(
            update(Incident)
            .where(
                Incident.id == incident.id,
                Incident.reminders == incident.reminders,
                Incident.acknowledged_at.is_(None),
                Incident.resolved_at.is_(None),
            )
            .values(reminders=count, reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(moved, "rowcount", 0) != 1:
            continue  # another replica reminded, or it was acknowledged or resolved meanwhile
        await session.execute(
            insert(IncidentEvent).values(
                id=new_id("iev"),
                org_id=incident.org_id,
                monitor_id=incident.monitor_id,
                incident_id=incident.id,
                type=REMINDER,
                occurred_at=now,
                in_maintenance=False,
                suppressed_by=None,
                payload=incident_payload(incident, row.name, row.url, row.type, count=count),
            )
        )
        written += 1
    await session.commit()
    return written
