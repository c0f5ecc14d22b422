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

# Results per transaction. Each comes back as its rollup keys' sums and histogram buckets (~14 rows
# for a monitor's one result in a fold period), added up in Python between two awaits: at 200,000 a
# pass over 100,000 monitors held the event loop for seconds, and the agents' calls waited behind
# it. 2,000 is a twentieth of a second or so; the loop runs between transactions.
FOLD_LIMIT = 2_000


async def fold_rollups(db: Database, *, limit: int = FOLD_LIMIT, store: ResultsStore | None = None) -> int:
    """Fold the whole backlog, `limit` results per transaction, through the database's store (or
    `store`); returns how many were folded."""
    store = store or results_store(db.engine)
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
