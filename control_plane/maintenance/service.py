"""Maintenance windows' CRUD within one organization: what /api/maintenance calls.

Changes arrive as column values (the API maps its field names); every rule is checked on the
window as it would be after the change, and a broken rule is an InvalidInput naming the API field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.errors import InvalidInput, NotFound
from control_plane.core.ids import new_id
from control_plane.maintenance.windows import Schedule, Status, occurrences, status
from control_plane.models import MaintenanceWindow, Monitor

FILTERS: tuple[Status, ...] = ("active", "upcoming", "past")
DEFAULT_TIMEZONE = "UTC"
NOT_FOUND = "Maintenance window not found"
_RECURRING_ONLY = {"duration_minutes": "durationMinutes", "timezone": "timezone"}


@dataclass(frozen=True, slots=True)
class WindowView:
    """A window with its monitor's name (None for an org-wide window)."""

    window: MaintenanceWindow
    monitor_name: str | None


async def list_windows(
    session: AsyncSession, org_id: str, *, filter: Status | None, now: datetime
) -> list[WindowView]:
    """The organization's windows by start time; with a filter, those whose status it is."""
    rows = await session.execute(
        select(MaintenanceWindow, Monitor.name)
        .outerjoin(Monitor, Monitor.id == MaintenanceWindow.monitor_id)
        .where(MaintenanceWindow.org_id == org_id)
        .order_by(MaintenanceWindow.starts_at, MaintenanceWindow.id)
    )
    views = [WindowView(window, name) for window, name in rows.all()]
    if filter is None:
        return views
    return [view for view in views if status(Schedule.of(view.window), view.window.is_active, now) == filter]


async def get_window(session: AsyncSession, org_id: str, window_id: str) -> WindowView:
    row = (
        await session.execute(
            select(MaintenanceWindow, Monitor.name)
            .outerjoin(Monitor, Monitor.id == MaintenanceWindow.monitor_id)
            .where(MaintenanceWindow.id == window_id, MaintenanceWindow.org_id == org_id)
        )
    ).first()
    if row is None:
        raise NotFound(NOT_FOUND)
    return WindowView(row[0], row[1])


async def create_window(
    session: AsyncSession, org_id: str, values: Mapping[str, Any], *, now: datetime
) -> WindowView:
    """A new window from `values` (title, starts_at, ends_at required; the other columns optional)."""
    fields = {"description": None, "monitor_id": None, "recurrence": None, **values}
    for column, name in _RECURRING_ONLY.items():
        if fields.get(column) is not None and fields["recurrence"] is None:
            raise InvalidInput(f"{name}: only for a recurring window (one with recurrence)")
    if fields["recurrence"] is not None:
        fields.setdefault("timezone", DEFAULT_TIMEZONE)
    window = MaintenanceWindow(
        id=new_id("mw"), org_id=org_id, is_active=True, created_at=now, updated_at=now, **fields
    )
    monitor_name = await _check(session, window)
    session.add(window)
    await session.commit()
    return WindowView(window, monitor_name)


async def update_window(
    session: AsyncSession, org_id: str, window_id: str, changes: Mapping[str, Any], *, now: datetime
) -> WindowView:
    """Apply the changed columns; the window as changed must still keep every rule. Clearing
    `recurrence` makes it a one-off window: its duration and time zone go with it."""
    window = (await get_window(session, org_id, window_id)).window
    recurring_before = window.recurrence is not None
    for column, value in changes.items():
        setattr(window, column, value)
    if window.recurrence is None:
        for column, name in _RECURRING_ONLY.items():
            if changes.get(column) is not None:
                raise InvalidInput(f"{name}: only for a recurring window (one with recurrence)")
            if recurring_before:
                setattr(window, column, None)
    elif window.timezone is None:
        window.timezone = DEFAULT_TIMEZONE
    monitor_name = await _check(session, window)
    window.updated_at = now
    await session.commit()
    return WindowView(window, monitor_name)


async def delete_window(session: AsyncSession, org_id: str, window_id: str) -> None:
    window = (await get_window(session, org_id, window_id)).window
    await session.delete(window)
    await session.commit()


async def _check(session: AsyncSession, window: MaintenanceWindow) -> str | None:
    """Raise InvalidInput for the first rule the window breaks; its monitor's name when it has one."""
    if window.ends_at <= window.starts_at:
        raise InvalidInput("endsAt: must be after startsAt")
    if window.recurrence is not None:
        if window.duration_minutes is None:
            raise InvalidInput("durationMinutes: required with recurrence")
        schedule = Schedule.of(window)
        if next(occurrences(schedule, schedule.starts_at, schedule.ends_at), None) is None:
            raise InvalidInput(
                "recurrence: no occurrence between startsAt and endsAt (in the window's timezone)"
            )
    if window.monitor_id is None:
        return None
    with session.no_autoflush:  # an unknown monitor id must not reach the foreign key first
        name = await session.scalar(
            select(Monitor.name).where(Monitor.id == window.monitor_id, Monitor.org_id == window.org_id)
        )
    if name is None:
        raise InvalidInput(f"monitorId: no monitor {window.monitor_id!r} in this organization")
    return name
