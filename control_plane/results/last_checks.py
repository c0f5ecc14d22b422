"""Each monitor's newest result (lastCheck), written after its batch commits: at once, or behind
ingestion by a writer that gathers batches.

Agents' batches note their monitors' newest results in a `LastCheckWriter` once committed; one
background task per process writes what has gathered, a few times a second, in one statement.
Acknowledging a batch does not wait for it, and however many batches touched a monitor meanwhile,
its row is written once. lastCheck is a copy kept for cheap lists, not a record: what a crash
loses before it is written is put right by the monitor's next result (the results themselves are
committed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import Database, UnavailableLog
from control_plane.results.domain import LastCheck, ResultIn, newest_per_monitor
from control_plane.results.store import ResultsStore, results_store

log = logging.getLogger(__name__)


async def write_last_checks(
    session: AsyncSession, newest: dict[str, LastCheck], *, store: ResultsStore | None = None
) -> None:
    """Monitors' newest results into their lastCheck (newest wins), committed here."""
    await (store or results_store(session)).update_last_checks(session, newest)
    await session.commit()


class WriteLastChecksNow:
    """After a batch commits: its monitors' lastCheck, written before `record_results` returns."""

    def __init__(self, store: ResultsStore) -> None:
        self._store = store

    async def __call__(self, session: AsyncSession, stored: Sequence[ResultIn]) -> None:
        await write_last_checks(session, newest_per_monitor(stored), store=self._store)


class LastCheckWriter:
    def __init__(
        self, db: Database, *, interval_seconds: float = 0.1, store: ResultsStore | None = None
    ) -> None:
        self._db = db
        self._store = store or results_store(db.engine)
        self._interval = interval_seconds
        self._pending: dict[str, LastCheck] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self._outage = UnavailableLog()  # retried each second during an outage: a line per window

    async def after_commit(self, session: AsyncSession, stored: Sequence[ResultIn]) -> None:
        """A batch's listener: its monitors' newest results, noted for the next flush."""
        self.note(newest_per_monitor(stored).items())

    def note(self, newest: Iterable[tuple[str, LastCheck]]) -> None:
        """Monitors' newest results, committed: written with the next flush (newest wins)."""
        pending = self._pending
        for monitor_id, last in newest:
            current = pending.get(monitor_id)
            if current is None or last[2] >= current[2]:
                pending[monitor_id] = last
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="traxo-last-checks")

    async def stop(self) -> None:
        """Stop the task, then write what is left."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        async with self._flushing:
            batch, self._pending = self._pending, {}
            if not batch:
                return
            try:
                async with self._db.session() as session:
                    await write_last_checks(session, batch, store=self._store)
            except BaseException:
                # Not lost: back in, unless something newer came meanwhile; the next flush retries.
                self.note(batch.items())
                raise

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._interval)  # let batches gather
            try:
                await self.flush()
            except Exception as exc:
                if not self._outage.outage_noted(f"writing lastCheck of {len(self._pending)} monitors", exc):
                    log.exception("writing lastCheck of %d monitors failed; retrying", len(self._pending))
                await asyncio.sleep(1)
                self._wake.set()
