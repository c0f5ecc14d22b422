"""Retention: raw check results past the retention period go, in small batches; rollups stay longer.
Results of deleted monitors that their deletion left behind go too."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from control_plane.ai.usage.retention import apply_ai_retention
from control_plane.core.timefmt import Clock, utcnow
from control_plane.db import Database
from control_plane.results import delete_expired, delete_results_of, orphaned_monitor_ids
from control_plane.settings import Settings

log = logging.getLogger(__name__)


async def apply_retention(
    db: Database, settings: Settings, *, clock: Clock = utcnow, batch_size: int = 5000
) -> int:
    """Delete everything past retention, one short transaction per batch; returns rows deleted."""
    total = 0
    while True:
        async with db.session() as session:
            deleted = await delete_expired(
                session,
                now=clock(),
                retention=timedelta(days=settings.retention_days),
                rollup_retention=timedelta(days=settings.rollup_retention_days),
                batch_size=batch_size,
            )
        total += deleted
        if deleted == 0:
            break
        await asyncio.sleep(0)  # let ingestion in
    async with db.session() as session:
        for monitor_id in await orphaned_monitor_ids(session):
            total += await delete_results_of(session, monitor_id, batch_size=batch_size)
    total += await apply_ai_retention(db, settings, now=clock(), batch_size=batch_size)
    if total:
        log.info("retention deleted %d expired rows", total)
    return total
