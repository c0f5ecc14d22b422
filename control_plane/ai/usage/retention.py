"""Retention of AI monitoring's data: raw events past ai_retention_days, hourly rollups past
rollup_retention_days, organizations' daily counts past DAILY_USAGE_RETENTION, and the events of
deleted monitors (events have no foreign key), each in short committed batches."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import Database
from control_plane.models import Monitor
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


async def _orphaned_monitor_ids(session: AsyncSession) -> list[str]:
    """Deleted monitors that still have events: walks the (monitor_id, created_at) index one
    monitor at a time, not the events."""
    rows = await session.execute(
        text(
            """
            WITH RECURSIVE ids(monitor_id) AS (
                SELECT (SELECT monitor_id FROM ai_events ORDER BY monitor_id LIMIT 1)
                UNION ALL
                SELECT (
                    SELECT monitor_id FROM ai_events
                    WHERE monitor_id > ids.monitor_id ORDER BY monitor_id LIMIT 1
                )
                FROM ids WHERE ids.monitor_id IS NOT NULL
            )
            SELECT monitor_id FROM ids WHERE monitor_id IS NOT NULL
            """
        )
    )
    candidates = [row[0] for row in rows]
    if not candidates:
        return []
    kept = set(await session.scalars(select(Monitor.id).where(Monitor.id.in_(candidates))))
    return [monitor_id for monitor_id in candidates if monitor_id not in kept]


async def _delete_events_of(session: AsyncSession, monitor_id: str, batch_size: int) -> int:
    deleted = 0
    while True:
        doomed = select(AiEvent.id).where(AiEvent.monitor_id == monitor_id).limit(batch_size)
        result = await session.execute(delete(AiEvent).where(AiEvent.id.in_(doomed.scalar_subquery())))
        await session.commit()
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        deleted += count
        if count < batch_size:
            return deleted


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
        for monitor_id in await _orphaned_monitor_ids(session):
            total += await _delete_events_of(session, monitor_id, batch_size)
    return total
