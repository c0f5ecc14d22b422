"""The rollup fold: results queued by ingestion are added to their hourly/daily rollups in bulk.

Ingestion queues each stored result's measures (rollup_backlog) instead of rewriting its two
rollup rows; this job adds the queue up per rollup key and merges it in, so a rollup row is
rewritten once per fold however many results it gained. Readers count what is still queued, so
the interval trades database work for nothing a user sees.
"""

from __future__ import annotations

import asyncio
import logging

from control_plane.db import Database
from control_plane.results import ResultsStore, fold_backlog, results_store

log = logging.getLogger(__name__)


async def fold_rollups(db: Database, *, limit: int | None = None, store: ResultsStore | None = None) -> int:
    """Fold the whole backlog, `limit` results per transaction (the store's fold_limit unless
    given), through the database's store (or `store`); returns how many were folded."""
    store = store or results_store(db.engine)
    limit = limit or store.fold_limit
    total = 0
    while True:
        async with db.session() as session:
            taken = await fold_backlog(session, limit=limit, store=store)
        total += taken
        if taken < limit:
            break
        await asyncio.sleep(0)  # let ingestion in between transactions
    if total:
        log.debug("folded %d results into rollups", total)
    return total
