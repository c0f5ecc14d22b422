"""Incident changes as rows: the incident, its timeline entry and its outbox event, written
together in the caller's transaction. Resolving is compare-and-set (`WHERE resolved_at IS NULL`);
opening is guarded by the one-open-incident-per-kind unique index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.changes import publish
from control_plane.core.ids import new_id
from control_plane.core.timefmt import iso
from control_plane.models import Incident, IncidentEvent, IncidentUpdate

# The change topic that tells every replica's alert delivery that the outbox has news.
EVENTS_TOPIC = "incident_events"
_WROTE_EVENTS = "traxo_wrote_incident_events"


async def announce_events(session: AsyncSession) -> None:
    """Before committing a transaction that may have written events: announce them once."""
    if session.info.pop(_WROTE_EVENTS, False):
        await publish(session, EVENTS_TOPIC)


def forget_events(session: AsyncSession) -> None:
    """Before rolling such a transaction back: its events are gone."""
    session.info.pop(_WROTE_EVENTS, None)


@dataclass(frozen=True, slots=True)
class MonitorRef:
    """What an incident change says about its monitor."""

    id: str
    org_id: str
    name: str
    url: str | None
    type: str


@dataclass(frozen=True, slots=True)
class OpenIncident:
    id: str
    kind: str
    started_at: datetime
    regions: tuple[str, ...]
    flapping: bool
    suppressed_by: str | None
    in_maintenance: bool


def _payload(monitor: MonitorRef, **extra: Any) -> dict[str, Any]:
    return {
        "monitorId": monitor.id,
        "monitorName": monitor.name,
        "monitorUrl": monitor.url,
        "monitorType": monitor.type,
        **extra,
    }


async def _record(
    session: AsyncSession,
    monitor: MonitorRef,
    incident_id: str,
    event_type: str,
    at: datetime,
    message: str,
    *,
    status: str | None,
    in_maintenance: bool,
    suppressed_by: str | None,
    payload: dict[str, Any],
    event: bool = True,
) -> None:
    await session.execute(
        insert(IncidentUpdate).values(
            id=new_id("iu"),
            incident_id=incident_id,
            org_id=monitor.org_id,
            kind="system",
            status=status,
            message=message,
            author_id=None,
            created_at=at,
        )
    )
    if event:
        session.info[_WROTE_EVENTS] = True
        await session.execute(
            insert(IncidentEvent).values(
                id=new_id("iev"),
                org_id=monitor.org_id,
                monitor_id=monitor.id,
                incident_id=incident_id,
                type=event_type,
                occurred_at=at,
                in_maintenance=in_maintenance,
                suppressed_by=suppressed_by,
                payload=_payload(monitor, incidentId=incident_id, **payload),
            )
        )


async def open_incident(
    session: AsyncSession,
    monitor: MonitorRef,
    *,
    kind: str,
    started_at: datetime,
    cause: str,
    regions: tuple[str, ...],
    suppressed_by: str | None,
    in_maintenance: bool,
    now: datetime,
    resolve_at_once: bool = False,
) -> str:
    """A new incident, its "opened" timeline entry and event. (`resolve_at_once`: a point event,
    such as DNS answers that changed: recorded resolved, with the one event.)"""
    incident_id = new_id("inc")
    await session.execute(
        insert(Incident).values(
            id=incident_id,
            org_id=monitor.org_id,
            monitor_id=monitor.id,
            kind=kind,
            started_at=started_at,
            resolved_at=started_at if resolve_at_once else None,
            cause=cause,
            regions=list(regions),
            status="resolved" if resolve_at_once else "investigating",
            flapping=False,
            suppressed_by=suppressed_by,
            in_maintenance=in_maintenance,
            updated_at=now,
        )
    )
    await _record(
        session,
        monitor,
        incident_id,
        "incident.opened",
        started_at,
        cause,
        status="resolved" if resolve_at_once else "investigating",
        in_maintenance=in_maintenance,
        suppressed_by=suppressed_by,
        payload={"kind": kind, "cause": cause, "regions": list(regions), "startedAt": iso(started_at)},
    )
    return incident_id


async def resolve_incident(
    session: AsyncSession,
    monitor: MonitorRef,
    incident: OpenIncident,
    *,
    at: datetime,
    message: str,
    in_maintenance: bool,
    now: datetime,
) -> bool:
    """Resolve it if it is still open (compare-and-set); False when someone else already did."""
    resolved_at = max(at, incident.started_at)
    result = await session.execute(
        update(Incident)
        .where(Incident.id == incident.id, Incident.resolved_at.is_(None))
        .values(resolved_at=resolved_at, status="resolved", updated_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    duration = int((resolved_at - incident.started_at).total_seconds())
    await _record(
        session,
        monitor,
        incident.id,
        "incident.resolved",
        resolved_at,
        message,
        status="resolved",
        in_maintenance=in_maintenance,
        suppressed_by=incident.suppressed_by,
        payload={"kind": incident.kind, "duration": duration, "resolvedAt": iso(resolved_at)},
    )
    return True


async def mark_flapping(
    session: AsyncSession,
    monitor: MonitorRef,
    incident: OpenIncident,
    *,
    at: datetime,
    transitions: int,
    in_maintenance: bool,
    now: datetime,
) -> None:
    """Keep the incident open, flagged flapping: one event instead of a storm of them."""
    await session.execute(
        update(Incident)
        .where(Incident.id == incident.id, Incident.resolved_at.is_(None))
        .values(flapping=True, updated_at=now)
    )
    message = (
        f"Flapping: {transitions} changes between down and up in the last hour; "
        "kept open until the monitor is stable"
    )
    await _record(
        session,
        monitor,
        incident.id,
        "incident.flapping",
        at,
        message,
        status=None,
        in_maintenance=in_maintenance,
        suppressed_by=incident.suppressed_by,
        payload={"kind": incident.kind, "transitions": transitions},
    )


async def note(
    session: AsyncSession, monitor: MonitorRef, incident: OpenIncident, *, at: datetime, message: str
) -> None:
    """A timeline entry of the engine's with no event (e.g. down again while flapping)."""
    await _record(
        session,
        monitor,
        incident.id,
        "",
        at,
        message,
        status=None,
        in_maintenance=incident.in_maintenance,
        suppressed_by=incident.suppressed_by,
        payload={},
        event=False,
    )


async def widen_regions(session: AsyncSession, incident: OpenIncident, regions: tuple[str, ...]) -> None:
    merged = sorted(set(incident.regions) | set(regions))
    if merged != sorted(incident.regions):
        await session.execute(update(Incident).where(Incident.id == incident.id).values(regions=merged))
