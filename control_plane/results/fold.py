"""The rollup fold: results queued by ingestion added to their hour's and day's rollups in bulk.

The hourly/daily rollups are the backlog folded in; their readers add what is still queued, so
what they report is always every stored result.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.results.store import ResultsStore, results_store, retried


async def fold_backlog(session: AsyncSession, *, limit: int, store: ResultsStore | None = None) -> int:
    """Add up to `limit` queued results to their hour's and day's rollups and unqueue them, in one
    transaction (committed here). Returns how many were taken; 0 when the backlog is empty.

    Results of monitors deleted meanwhile are dropped. One fold at a time (the worker's lease);
    a second one running anyway would only find the rows the first took already gone.
    """
    chosen = store or results_store(session)
    return await retried(session, lambda: _fold(session, chosen, limit), chosen.retries_fold)


async def _fold(session: AsyncSession, store: ResultsStore, limit: int) -> int:
    taken, deltas = await store.take_backlog(session, limit)
    if deltas:
        await store.add_rollups(session, deltas)
    await session.commit()
    return taken
