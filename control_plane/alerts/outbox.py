"""Fan-out: incident events (the outbox the engine writes) become one delivery per target channel.

`dispatch_events` claims undispatched events (`FOR UPDATE SKIP LOCKED`, so every replica may run
it; SQLite ignores it), and in one transaction creates their deliveries and marks them
dispatched. The unique (event, channel) key makes a second fan-out of an event impossible (a repeat inserts
nothing).

What is delivered (docs/alerts-delivery.md):
- an event suppressed by a dependency, or recorded in maintenance: nothing (dispatched, no
  deliveries). An incident still open when its maintenance ends is announced then:
  `release_held` writes a fresh "incident.opened" event for it, which fans out normally;
- "incident.opened" marks the incident alerted (compare-and-set), with deliveries or without
  (an organization with no channel);
- every other event of an incident never alerted is not delivered: nobody heard of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.ids import new_id
from control_plane.core.timefmt import iso
from control_plane.db import insert_ignoring_conflicts
from control_plane.maintenance import monitors_in_maintenance
from control_plane.models import Incident, IncidentEvent, Monitor, MonitorState
from control_plane.models.alerts import DELIVERY_PENDING, AlertChannel, AlertDelivery

OPENED = "incident.opened"
DEFAULT_GIVE_UP = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class _Target:
    alerted: bool  # the incident's "opened" notice has gone out
    channel_ids: list[str] | None  # the monitor's choice; None: every active channel
    monitor_id: str


async def dispatch_events(
    session: AsyncSession, *, now: datetime, limit: int = 500, give_up_after: timedelta = DEFAULT_GIVE_UP
) -> int:
    """Fan out up to `limit` undispatched events, oldest first, and commit. Returns the number
    of events dispatched (0: none waiting)."""
    events = list(
        await session.scalars(
            select(IncidentEvent)
            .where(IncidentEvent.dispatched_at.is_(None))
            .order_by(IncidentEvent.occurred_at, IncidentEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not events:
        await session.commit()
        return 0
    targets = await _targets(session, events)
    await _lock_monitors_to_mark(session, events, targets)
    channels = await _active_channels(session, {event.org_id for event in events})
    rows: list[dict[str, Any]] = []
    for event in events:
        target = targets.get(event.incident_id)
        if target is None or event.suppressed_by is not None or event.in_maintenance:
            continue
        if event.type == OPENED:
            if target.alerted or not await _mark_alerted(session, event.incident_id, now):
                continue  # already announced (a second "opened" for it, from two replicas)
            targets[event.incident_id] = _Target(True, target.channel_ids, target.monitor_id)
        elif not target.alerted:
            continue  # nobody heard of this incident: no resolve, update or reminder for it
        for channel_id in _chosen(channels.get(event.org_id, []), target.channel_ids):
            rows.append(
                {
                    "id": new_id("dlv"),
                    "org_id": event.org_id,
                    "channel_id": channel_id,
                    "event_id": event.id,
                    "incident_id": event.incident_id,
                    "kind": event.type,
                    "idempotency_key": event.id,
                    "status": DELIVERY_PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "give_up_at": now + give_up_after,
                    "created_at": now,
                }
            )
    if rows:
        await session.execute(_insert_new(session), rows)
    await session.execute(
        update(IncidentEvent)
        .where(IncidentEvent.id.in_([event.id for event in events]))
        .values(dispatched_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return len(events)


def _insert_new(session: AsyncSession) -> Any:
    """INSERT … ON CONFLICT DO NOTHING: a delivery that exists for its (event, channel) stays the
    only one (an event fanned out again is a no-op, not a failed batch every pass)."""
    return insert_ignoring_conflicts(session, AlertDelivery, "event_id", "channel_id")


async def _targets(session: AsyncSession, events: list[IncidentEvent]) -> dict[str, _Target]:
    incident_ids = sorted({event.incident_id for event in events})
    rows = await session.execute(
        select(Incident.id, Incident.alerted_at, Monitor.alert_channel_ids, Incident.monitor_id)
        .join(Monitor, Monitor.id == Incident.monitor_id)
        .where(Incident.id.in_(incident_ids))
    )
    return {
        row.id: _Target(row.alerted_at is not None, row.alert_channel_ids, row.monitor_id) for row in rows
    }


async def _lock_monitors_to_mark(
    session: AsyncSession, events: list[IncidentEvent], targets: dict[str, _Target]
) -> None:
    """Locks the monitor_states rows of the monitors whose incidents this fan-out may mark alerted,
    in id order, before any is marked: the engine holds a monitor's row while it writes the
    monitor's incidents, so taking the same locks first makes the two wait for each other instead
    of deadlocking over incidents locked in two orders (tests/test_alert_outbox_locks.py)."""
    monitor_ids = sorted(
        {
            target.monitor_id
            for event in events
            if event.type == OPENED
            and (target := targets.get(event.incident_id)) is not None
            and not target.alerted
        }
    )
    if monitor_ids:
        await session.execute(
            select(MonitorState.monitor_id)
            .where(MonitorState.monitor_id.in_(monitor_ids))
            .order_by(MonitorState.monitor_id)
            .with_for_update()
        )


async def _active_channels(session: AsyncSession, org_ids: set[str]) -> dict[str, list[str]]:
    rows = await session.execute(
        select(AlertChannel.id, AlertChannel.org_id)
        .where(AlertChannel.org_id.in_(sorted(org_ids)), AlertChannel.is_active.is_(True))
        .order_by(AlertChannel.created_at, AlertChannel.id)
    )
    channels: dict[str, list[str]] = {}
    for row in rows:
        channels.setdefault(row.org_id, []).append(row.id)
    return channels


def _chosen(active: list[str], chosen: list[str] | None) -> list[str]:
    """The monitor's channels that still exist and are active (its organization's only), or all."""
    if chosen is None:
        return active
    wanted = set(chosen)
    return [channel_id for channel_id in active if channel_id in wanted]


async def _mark_alerted(session: AsyncSession, incident_id: str, now: datetime) -> bool:
    result = await session.execute(
        update(Incident)
        .where(Incident.id == incident_id, Incident.alerted_at.is_(None))
        .values(alerted_at=now)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


async def release_held(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """Incidents opened during maintenance, still open, never alerted and not suppressed, whose
    monitor is out of maintenance now: a new "incident.opened" event for each (it fans out on the
    next `dispatch_events`). Commits; returns how many were released."""
    waiting = exists().where(
        IncidentEvent.incident_id == Incident.id,
        IncidentEvent.type == OPENED,
        IncidentEvent.dispatched_at.is_(None),
    )
    rows = list(
        await session.execute(
            select(Incident, Monitor.name, Monitor.url, Monitor.type)
            .join(Monitor, Monitor.id == Incident.monitor_id)
            .where(
                Incident.resolved_at.is_(None),
                Incident.alerted_at.is_(None),
                Incident.suppressed_by.is_(None),
                Incident.in_maintenance.is_(True),
                ~waiting,
            )
            .order_by(Incident.started_at)
            .limit(limit)
        )
    )
    if not rows:
        return 0
    held = await monitors_in_maintenance(
        session, [(row.Incident.monitor_id, row.Incident.org_id) for row in rows], now
    )
    released = [row for row in rows if row.Incident.monitor_id not in held]
    for row in released:
        incident: Incident = row.Incident
        await session.execute(
            insert(IncidentEvent).values(
                id=new_id("iev"),
                org_id=incident.org_id,
                monitor_id=incident.monitor_id,
                incident_id=incident.id,
                type=OPENED,
                occurred_at=now,
                in_maintenance=False,
                suppressed_by=None,
                payload=incident_payload(incident, row.name, row.url, row.type, maintenanceEnded=True),
            )
        )
    await session.commit()
    return len(released)


def incident_payload(
    incident: Incident, name: str, url: str | None, monitor_type: str, **extra: Any
) -> dict[str, Any]:
    """An event's payload as control_plane/incidents/changes.py writes an "opened" one."""
    return {
        "monitorId": incident.monitor_id,
        "monitorName": name,
        "monitorUrl": url,
        "monitorType": monitor_type,
        "incidentId": incident.id,
        "kind": incident.kind,
        "cause": incident.cause,
        "regions": list(incident.regions or []),
        "startedAt": iso(incident.started_at),
        **extra,
    }


__all__ = ["dispatch_events", "incident_payload", "release_held"]
