"""The one interface the results path stores through, the factory that picks its implementation
for a database, and the rule for running a transaction again when the store says that helps.

Where SQLite and PostgreSQL differ (how a batch is inserted, how the backlog is folded, which
errors a fresh start resolves), the difference lives in `sqlite_store.py` or `postgres_store.py`;
ingest, fold, retention and the lastCheck writer above them never look at the dialect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from control_plane.results.domain import LastCheck, ResultIn, RollupDeltas
from control_plane.results.postgres_store import PostgresResultsStore
from control_plane.results.sqlite_store import SqliteResultsStore

T = TypeVar("T")


class ResultsStore(Protocol):
    """Results' storage, in the caller's transaction: nothing here commits."""

    # Queued results one fold transaction takes at most: each rollup row is rewritten once a
    # transaction, so the more it takes, the fewer rewrites a result costs.
    fold_limit: int

    async def existing_monitors(self, session: AsyncSession, monitor_ids: Sequence[str]) -> set[str]:
        """The existing monitors among these. None of them is deleted before the transaction ends
        (a deletion waits for it: `exclude_writers`)."""
        ...

    async def insert_new(self, session: AsyncSession, results: Sequence[ResultIn]) -> set[str]:
        """Store the results whose id is not stored yet, and queue them for their rollups; returns
        the ids stored. The monitors are known to exist."""
        ...

    async def take_backlog(self, session: AsyncSession, limit: int) -> tuple[int, RollupDeltas]:
        """Unqueue up to `limit` queued results; returns how many were taken and what those of
        monitors that still exist add to each rollup."""
        ...

    async def add_rollups(self, session: AsyncSession, deltas: RollupDeltas) -> None:
        """Add the deltas to their rollup rows, creating the rows that do not exist yet."""
        ...

    async def update_last_checks(self, session: AsyncSession, newest: dict[str, LastCheck]) -> None:
        """Monitors' newest results into their lastCheck; an older result never replaces a newer."""
        ...

    async def exclude_writers(self, session: AsyncSession) -> None:
        """Wait for batches being written to commit and keep new ones out until this transaction
        ends (a monitor is deleted under it)."""
        ...

    def retries_insert(self, exc: Exception) -> bool:
        """Whether a batch that failed with `exc` succeeds when run again from the start."""
        ...

    def retries_fold(self, exc: Exception) -> bool:
        """Whether a fold that failed with `exc` succeeds when run again from the start."""
        ...


def results_store(bind: AsyncSession | AsyncEngine) -> ResultsStore:
    """The results store of the database behind `bind`: the one place its dialect decides anything
    on the results path. (The stores keep no state of their own, so any instance serves.)"""
    dialect = (bind.get_bind() if isinstance(bind, AsyncSession) else bind).dialect.name
    if dialect == "postgresql":
        return PostgresResultsStore()
    if dialect == "sqlite":
        return SqliteResultsStore()
    raise ValueError(f"no results store for the database dialect {dialect!r}: use SQLite or PostgreSQL")


_ATTEMPTS = 3


async def retried(
    session: AsyncSession, attempt: Callable[[], Awaitable[T]], retry_on: Callable[[Exception], bool]
) -> T:
    """`attempt()`, a transaction committed by it; rolled back and run again (up to _ATTEMPTS
    times in all) when it fails with an error `retry_on` says a fresh start resolves."""
    for remaining in range(_ATTEMPTS - 1, -1, -1):
        try:
            return await attempt()
        except Exception as exc:
            if not remaining or not retry_on(exc):
                raise
            await session.rollback()
    raise AssertionError("unreachable")
