"""What leaves the results: raw results past retention, rollups past theirs, and the results of
deleted monitors (by their deletion, or by the orphan walk when a deletion stopped short)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import deleted_monitor_ids
from control_plane.models import CheckResult, CheckRollup, RollupBacklog
from control_plane.results.store import results_store


async def exclude_result_writers(session: AsyncSession) -> None:
    """Wait for batches of results being written to commit, and keep new ones waiting until this
    transaction ends. A monitor is deleted under it: a batch either committed before (and its
    results are deleted with the monitor's) or finds the monitor gone."""
    await results_store(session).exclude_writers(session)


async def delete_results_of(session: AsyncSession, monitor_id: str, *, batch_size: int = 5000) -> int:
    """Delete a deleted monitor's queued and stored results (and their screenshots), a committed
    batch at a time. Not in the deletion's transaction: a fold holding some of the queued rows
    would wait for it while it waited for the fold."""
    deleted = 0
    await session.execute(delete(RollupBacklog).where(RollupBacklog.monitor_id == monitor_id))
    await session.commit()
    while True:
        doomed = select(CheckResult.id).where(CheckResult.monitor_id == monitor_id).limit(batch_size)
        result = await session.execute(
            delete(CheckResult).where(CheckResult.id.in_(doomed.scalar_subquery()))
        )
        await session.commit()
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        deleted += count
        if count < batch_size:
            return deleted


async def orphaned_monitor_ids(session: AsyncSession) -> list[str]:
    """Ids of deleted monitors that still have results: what a deletion left when its process
    stopped before deleting them (or, on SQLite, a batch that looked just before the deletion)."""
    return await deleted_monitor_ids(session, "check_results")


async def delete_expired(
    session: AsyncSession,
    *,
    now: datetime,
    retention: timedelta,
    rollup_retention: timedelta,
    batch_size: int,
) -> int:
    """Delete one batch of raw results past retention (and rollups past theirs); returns rows deleted.

    Small batches keep each transaction short, so ingestion never waits long behind retention.
    """
    cutoff = now - retention
    doomed = select(CheckResult.id).where(CheckResult.checked_at < cutoff).limit(batch_size)
    result = await session.execute(delete(CheckResult).where(CheckResult.id.in_(doomed.scalar_subquery())))
    deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
    rollup_cutoff = now - rollup_retention
    doomed_rollups = (
        select(CheckRollup.monitor_id, CheckRollup.region, CheckRollup.granularity, CheckRollup.bucket_start)
        .where(CheckRollup.bucket_start < rollup_cutoff)
        .limit(batch_size)
    )
    rollups = await session.execute(
        delete(CheckRollup).where(
            tuple_(
                CheckRollup.monitor_id, CheckRollup.region, CheckRollup.granularity, CheckRollup.bucket_start
            ).in_(doomed_rollups)
        )
    )
    deleted += int(rollups.rowcount or 0)  # type: ignore[attr-defined]
    await session.commit()
    return deleted
