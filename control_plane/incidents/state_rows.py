"""The engine's monitor state rows created before anything locks them (lock order: states.py)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Integer, Text, exists, false, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.id_sets import among
from control_plane.db import insert_ignoring_conflicts
from control_plane.models import Monitor, MonitorState


async def create_missing_states(session: AsyncSession, monitor_ids: Collection[str]) -> None:
    """A fresh state row (not down, version 0) for each of these monitors that exists and has none,
    inserted in id order; locks nothing else. Whatever locks monitor_states rows calls this before
    it locks any (see lock_monitor_states)."""
    for condition in among(session, Monitor.id, monitor_ids):
        fresh = (
            select(Monitor.id, Monitor.org_id, false(), literal(0, Integer), literal_column("'[]'", Text))
            .where(condition, ~exists().where(MonitorState.monitor_id == Monitor.id))
            .order_by(Monitor.id)
        )
        await session.execute(
            insert_ignoring_conflicts(session, MonitorState).from_select(
                ["monitor_id", "org_id", "down", "version", "transitions"], fresh
            )
        )
