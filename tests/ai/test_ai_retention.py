"""Retention of AI data through the retention worker's pass: raw events past ai_retention_days,
rollups past rollup_retention_days, daily counts past 40 days, the events of deleted monitors;
everything newer stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from control_plane.models import Monitor
from control_plane.models.ai import AiDailyUsage, AiEvent, AiUsageRollup
from control_plane.workers.retention import apply_retention
from tests.ai.support import ai_event_row, insert_llm_monitor, insert_rows, rollup_row

NOW = datetime(2026, 3, 13, 10, 30, tzinfo=UTC)


async def event_ids(database) -> list[str]:
    async with database.session() as session:
        return sorted(await session.scalars(select(AiEvent.id)))


async def rollup_hours(database) -> list[datetime]:
    async with database.session() as session:
        return sorted(await session.scalars(select(AiUsageRollup.hour)))


async def test_it_deletes_events_and_rollups_past_their_retention_only(database, world, settings):
    monitor = await insert_llm_monitor(database, world.org_a)
    kept_for = timedelta(days=settings.ai_retention_days)
    rollups_kept_for = timedelta(days=settings.rollup_retention_days)
    old_events = [
        ai_event_row(monitor, NOW - kept_for - timedelta(seconds=n + 1), id=f"evt_old{n}") for n in range(5)
    ]
    await insert_rows(
        database,
        [
            *old_events,
            ai_event_row(monitor, NOW - kept_for + timedelta(seconds=1), id="evt_kept"),
            ai_event_row(monitor, NOW, id="evt_now"),
            # Rollups outlive the events they sum.
            rollup_row(monitor, NOW - kept_for - timedelta(days=1), events=5),
            rollup_row(monitor, NOW - rollups_kept_for - timedelta(hours=1), events=1),
            rollup_row(monitor, NOW - rollups_kept_for - timedelta(hours=2), "gpt-4o-mini", events=1),
            AiDailyUsage(org_id=world.org_a, day=datetime(2026, 1, 31, tzinfo=UTC), events=9),
            AiDailyUsage(org_id=world.org_a, day=datetime(2026, 2, 2, tzinfo=UTC), events=9),
        ],
    )
    deleted = await apply_retention(database, settings, clock=lambda: NOW, batch_size=2)  # batches of 2
    assert deleted == 5 + 2 + 1
    assert await event_ids(database) == ["evt_kept", "evt_now"]
    assert await rollup_hours(database) == [(NOW - kept_for - timedelta(days=1)).replace(minute=0)]
    async with database.session() as session:
        days = list(await session.scalars(select(AiDailyUsage.day)))
    assert days == [datetime(2026, 2, 2, tzinfo=UTC)]
    assert await apply_retention(database, settings, clock=lambda: NOW) == 0


async def test_it_deletes_the_events_of_a_deleted_monitor(database, world, settings):
    gone = await insert_llm_monitor(database, world.org_a)
    kept = await insert_llm_monitor(database, world.org_a)
    await insert_rows(
        database,
        [ai_event_row(gone, NOW, id=f"evt_gone{n}") for n in range(3)]
        + [ai_event_row(kept, NOW, id="evt_kept")],
    )
    async with database.session() as session:
        await session.execute(delete(Monitor).where(Monitor.id == gone.id))
        await session.commit()
    assert await apply_retention(database, settings, clock=lambda: NOW, batch_size=2) == 3
    assert await event_ids(database) == ["evt_kept"]
