"""Incidents as people see and handle them: pages of the organization's incidents, one incident
with its timeline, and people's writes (a status update, an acknowledgement).

The engine (control_plane/incidents/) opens and resolves incidents; what people write here goes
into the same timeline and, in the same transaction, the same outbox of incident events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from control_plane.core.errors import Conflict, NotFound
from control_plane.core.ids import new_id
from control_plane.models import Incident, IncidentEvent, IncidentUpdate, Monitor, User

UPDATE_STATUSES = ("investigating", "identified", "monitoring", "resolved")
StatusFilter = Literal["active", "resolved"]


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """An incident with what its views show beside it: its monitor's name and URL, and the email
    of whoever acknowledged it."""

    incident: Incident
    monitor_name: str
    monitor_url: str | None
    acknowledged_by_email: str | None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    update: IncidentUpdate
    author_email: str | None


@dataclass(frozen=True, slots=True)
class IncidentDetail:
    row: IncidentRow
    timeline: list[TimelineEntry]


_Acknowledger = aliased(User)


def _rows_query() -> Any:
    return (
        select(Incident, Monitor.name, Monitor.url, _Acknowledger.email)
        .join(Monitor, Monitor.id == Incident.monitor_id)
        .outerjoin(_Acknowledger, _Acknowledger.id == Incident.acknowledged_by)
    )


def _row(values: Sequence[Any]) -> IncidentRow:
    incident, name, url, email = values
    return IncidentRow(incident, name, url, email)


def _newest_first(query: Any) -> Any:
    return query.order_by(Incident.started_at.desc(), Incident.id.desc())


async def list_incidents(
    session: AsyncSession,
    org_id: str,
    *,
    status: StatusFilter | None,
    monitor_id: str | None,
    page: int,
    limit: int,
) -> tuple[list[IncidentRow], int]:
    """A page of the organization's incidents, newest first, and how many match in all. A
    `monitor_id` of no monitor of the organization matches nothing (an empty page, not a 404)."""
    conditions = [Incident.org_id == org_id]
    if status == "active":
        conditions.append(Incident.resolved_at.is_(None))
    elif status == "resolved":
        conditions.append(Incident.resolved_at.is_not(None))
    if monitor_id is not None:
        conditions.append(Incident.monitor_id == monitor_id)
    total = int(await session.scalar(select(func.count()).select_from(Incident).where(*conditions)) or 0)
    rows = await session.execute(
        _newest_first(_rows_query().where(*conditions)).offset((page - 1) * limit).limit(limit)
    )
    return [_row(values) for values in rows], total


async def monitor_incidents(
    session: AsyncSession, monitor_id: str, *, limit: int | None = None
) -> list[IncidentRow]:
    """A monitor's incidents, newest first (the caller has checked the monitor is the org's)."""
    query = _newest_first(_rows_query().where(Incident.monitor_id == monitor_id))
    if limit is not None:
        query = query.limit(limit)
    return [_row(values) for values in await session.execute(query)]


async def _incident_row(session: AsyncSession, org_id: str, incident_id: str) -> IncidentRow:
    values = (
        await session.execute(
            _rows_query()
            .where(Incident.id == incident_id, Incident.org_id == org_id)
            .execution_options(populate_existing=True)  # fresh after this session's own updates
        )
    ).first()
    if values is None:
        raise NotFound("Incident not found")
    return _row(values)


async def _timeline(session: AsyncSession, incident_id: str) -> list[TimelineEntry]:
    rows = await session.execute(
        select(IncidentUpdate, User.email)
        .outerjoin(User, User.id == IncidentUpdate.author_id)
        .where(IncidentUpdate.incident_id == incident_id)
        .order_by(IncidentUpdate.created_at, IncidentUpdate.id)
    )
    return [TimelineEntry(update, email) for update, email in rows]


async def get_incident(session: AsyncSession, org_id: str, incident_id: str) -> IncidentDetail:
    """The incident with its timeline, oldest entry first; another organization's is NotFound."""
    row = await _incident_row(session, org_id, incident_id)
    return IncidentDetail(row, await _timeline(session, incident_id))


def _event(incident: Incident, kind: str, now: datetime, payload: dict[str, Any]) -> IncidentEvent:
    return IncidentEvent(
        id=new_id("iev"),
        org_id=incident.org_id,
        monitor_id=incident.monitor_id,
        incident_id=incident.id,
        type=kind,
        occurred_at=now,
        in_maintenance=incident.in_maintenance,
        suppressed_by=incident.suppressed_by,
        payload=payload,
    )


async def _author_email(session: AsyncSession, user_id: str) -> str | None:
    return await session.scalar(select(User.email).where(User.id == user_id))


async def add_update(
    session: AsyncSession,
    org_id: str,
    incident_id: str,
    *,
    author_id: str,
    status: str,
    message: str,
    now: datetime,
) -> TimelineEntry:
    """A person's status update on the timeline; the incident takes its status. "resolved" on an
    open incident resolves it (compare-and-set: the engine resolving it meanwhile wins, once); on a
    resolved one it is a note and leaves resolved_at as it was. Events go out in the same commit."""
    row = await _incident_row(session, org_id, incident_id)
    incident = row.incident
    entry = IncidentUpdate(
        id=new_id("iu"),
        incident_id=incident.id,
        org_id=org_id,
        kind="update",
        status=status,
        message=message,
        author_id=author_id,
        created_at=now,
    )
    session.add(entry)
    resolved_now = False
    if status == "resolved" and incident.resolved_at is None:
        changed = await session.execute(
            update(Incident)
            .where(Incident.id == incident.id, Incident.resolved_at.is_(None))
            .values(resolved_at=now, status=status, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        resolved_now = getattr(changed, "rowcount", 0) == 1
    if not resolved_now:
        await session.execute(
            update(Incident)
            .where(Incident.id == incident.id)
            .values(status=status, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    payload = {"updateId": entry.id, "status": status, "message": message, "authorId": author_id}
    session.add(_event(incident, "incident.updated", now, payload))
    if resolved_now:
        duration = round((now - incident.started_at).total_seconds())
        session.add(
            _event(incident, "incident.resolved", now, {"duration": duration, "resolvedBy": author_id})
        )
    email = await _author_email(session, author_id)
    await session.commit()
    return TimelineEntry(entry, email)


async def acknowledge(
    session: AsyncSession, org_id: str, incident_id: str, *, user_id: str, now: datetime
) -> IncidentDetail:
    """Records who acknowledged the open incident, once: a second acknowledgement, or one of a
    resolved incident, is a Conflict (compare-and-set, so two at once record one)."""
    row = await _incident_row(session, org_id, incident_id)
    incident = row.incident
    if incident.resolved_at is not None:
        raise Conflict("incident already resolved")
    if incident.acknowledged_at is not None:
        raise Conflict("incident already acknowledged")
    changed = await session.execute(
        update(Incident)
        .where(
            Incident.id == incident.id,
            Incident.acknowledged_at.is_(None),
            Incident.resolved_at.is_(None),
        )
        .values(acknowledged_at=now, acknowledged_by=user_id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(changed, "rowcount", 0) != 1:
        await session.rollback()
        refreshed = await _incident_row(session, org_id, incident_id)
        if refreshed.incident.resolved_at is not None and refreshed.incident.acknowledged_at is None:
            raise Conflict("incident already resolved")
        raise Conflict("incident already acknowledged")
    email = await _author_email(session, user_id)
    session.add(
        IncidentUpdate(
            id=new_id("iu"),
            incident_id=incident.id,
            org_id=org_id,
            kind="acknowledged",
            status=None,
            message=f"Acknowledged by {email}" if email else "Acknowledged",
            author_id=user_id,
            created_at=now,
        )
    )
    session.add(_event(incident, "incident.acknowledged", now, {"acknowledgedBy": user_id}))
    await session.commit()
    return await get_incident(session, org_id, incident_id)
