"""Retention of AI monitoring's data: raw events past ai_retention_days, hourly rollups past
rollup_retention_days, organizations' daily counts past DAILY_USAGE_RETENTION, and the events of
deleted monitors (events have no foreign key), each in short committed batches."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.ai.ingest.store import delete_ai_events_of
from control_plane.db import Database, deleted_monitor_ids
from control_plane.models.ai import AiDailyUsage, AiEvent, AiUsageRollup
from control_plane.settings import Settings

# The daily limit reads today's row; a month of them is more than anything looks back.
DAILY_USAGE_RETENTION = timedelta(days=40)


async def _delete_batch(session: AsyncSession, now: datetime, settings: Settings, batch_size: int) -> int:
    """One committed batch of each kind past its retention; returns rows deleted."""
    doomed_events = (
        select(AiEvent.id)
        .where(AiEvent.created_at < now - timedelta(days=settings.ai_retention_days))
        # Oldest first: every event after the oldest one kept is there (usage.event_count's premise).
        .order_by(AiEvent.created_at)
        .limit(batch_size)
    )
    events = await session.execute(delete(AiEvent).where(AiEvent.id.in_(doomed_events.scalar_subquery())))
    rollup_key = (AiUsageRollup.monitor_id, AiUsageRollup.hour, AiUsageRollup.provider, AiUsageRollup.model)
    doomed_rollups = (
        select(*rollup_key)
        .where(AiUsageRollup.hour < now - timedelta(days=settings.rollup_retention_days))
        .limit(batch_size)
    )
    rollups = await session.execute(delete(AiUsageRollup).where(tuple_(*rollup_key).in_(doomed_rollups)))
    days = await session.execute(delete(AiDailyUsage).where(AiDailyUsage.day < now - DAILY_USAGE_RETENTION))
    await session.commit()
    counts: list[int] = [result.rowcount or 0 for result in (events, rollups, days)]  # type: ignore[attr-defined]
    return sum(counts)


async def apply_ai_retention(
    db: Database, settings: Settings, *, now: datetime, batch_size: int = 5000
) -> int:
    """Delete AI data past retention, one short transaction per batch; returns rows deleted."""
    total = 0
    while True:
        async with db.session() as session:
            deleted = await _delete_batch(session, now, settings, batch_size)
        total += deleted
        if deleted == 0:
            break
        await asyncio.sleep(0)  # let the ingest in
    async with db.session() as session:
        for monitor_id in await deleted_monitor_ids(session, "ai_events"):
            total += await delete_ai_events_of(session, monitor_id, batch_size=batch_size)
    return total
