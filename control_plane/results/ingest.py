"""Check results in: one batch insert, idempotent by result id, then what follows a committed batch.

Every writer of results (agents over gRPC, heartbeats, tests, benchmarks) goes through
`record_results`, so the rollup backlog and the incident engine's queue are always in step with
the raw rows (the store queues both in the insert's transaction), and every batch's stored results
pass the same after-commit listeners (the lastCheck writer, the incident engine).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.incidents import IncidentEngine
from control_plane.models import CheckScreenshot
from control_plane.observability.metrics import count_results
from control_plane.results.domain import ResultIn
from control_plane.results.last_checks import LastCheckWriter, WriteLastChecksNow
from control_plane.results.store import ResultsStore, results_store, retried

# What makes a batch inside its transaction, with writes of its own that belong with it (a
# heartbeat's state): called at each attempt, since a retried attempt starts from a rollback that
# undid them.
BatchMaker = Callable[[], Awaitable[Sequence[ResultIn]]]


@dataclass(slots=True)
class RecordOutcome:
    inserted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # already stored: a replay
    orphaned: list[str] = field(default_factory=list)  # their monitor no longer exists


class AfterCommit(Protocol):
    """What happens once a batch has committed, given the results it stored (not the duplicates nor
    the orphans), in stored order. The session's transaction is over; a listener that writes
    commits its own. A listener that fails fails `record` (the batch stays committed)."""

    async def __call__(self, session: AsyncSession, stored: Sequence[ResultIn]) -> None: ...


@dataclass(frozen=True, slots=True)
class ResultsIngest:
    """Stores batches through `store`; calls each of `after_commit`, in order, after a batch commits."""

    store: ResultsStore
    after_commit: Sequence[AfterCommit] = ()

    async def record(self, session: AsyncSession, results: Sequence[ResultIn] | BatchMaker) -> RecordOutcome:
        """Store a batch in one transaction (committed here). Replayed ids are skipped, not counted
        twice. The new results are queued for their rollups in the same transaction. Given a
        BatchMaker instead of the batch, the batch is what it returns, at each attempt."""
        make: BatchMaker
        if callable(results):
            make = results
        else:
            if not results:
                return RecordOutcome()

            async def make() -> Sequence[ResultIn]:
                return results

        async def attempt() -> tuple[RecordOutcome, list[ResultIn]]:
            unique = list({result.id: result for result in await make()}.values())
            return await self._insert(session, unique)

        outcome, stored = await retried(session, attempt, self.store.retries_insert)
        count_results(
            committed=len(stored), duplicate=len(outcome.duplicates), orphaned=len(outcome.orphaned)
        )
        # After the retried transaction, not inside it: a listener failing must not run the batch
        # again (it would find its own results and report them as duplicates).
        if stored:
            for listener in self.after_commit:
                await listener(session, stored)
        return outcome

    async def _insert(
        self, session: AsyncSession, unique: list[ResultIn]
    ) -> tuple[RecordOutcome, list[ResultIn]]:
        outcome = RecordOutcome()
        monitor_ids = sorted({r.monitor_id for r in unique})
        existing = await self.store.existing_monitors(session, monitor_ids) if monitor_ids else set()
        live = [r for r in unique if r.monitor_id in existing]
        outcome.orphaned = [r.id for r in unique if r.monitor_id not in existing]
        fresh: list[ResultIn] = []
        if live:
            inserted_ids = await self.store.insert_new(session, live)
            fresh = [r for r in live if r.id in inserted_ids]
            outcome.inserted = [r.id for r in fresh]
            outcome.duplicates = [r.id for r in live if r.id not in inserted_ids]
            screenshots = [
                {"check_id": r.id, "png": r.screenshot_png, "created_at": r.checked_at}
                for r in fresh
                if r.screenshot_png
            ]
            if screenshots:
                await session.execute(insert(CheckScreenshot), screenshots)
        await session.commit()
        return outcome, fresh


class EvaluateIncidents:
    """After a batch commits, the incident engine takes and evaluates that batch's queued results
    (if it fails, or the process dies first, the engine's sweep takes them later)."""

    def __init__(self, engine: IncidentEngine) -> None:
        self._engine = engine

    async def __call__(self, session: AsyncSession, stored: Sequence[ResultIn]) -> None:
        await self._engine.evaluate_results(session, [r.id for r in stored])


async def record_results(
    session: AsyncSession,
    results: Sequence[ResultIn] | BatchMaker,
    *,
    last_checks: LastCheckWriter | None = None,
    store: ResultsStore | None = None,
    incidents: IncidentEngine | None = None,
    defer_incidents: bool = False,
) -> RecordOutcome:
    """Store a batch (committed here) through the database's store, or `store`. Its monitors'
    lastCheck is written before this returns, or, given a `last_checks` writer (agents'
    ingestion), handed to it to write shortly after. The incident engine (`incidents`, or one with
    the system clock) evaluates the batch before this returns; with `defer_incidents` (agents'
    ingestion, acknowledged without waiting for it), the workers' incidents job does, from the
    queue, within a second or so. `results` may be a BatchMaker (ResultsIngest.record)."""
    store = store or results_store(session)
    # What follows every committed batch.
    after_commit: list[AfterCommit] = [
        last_checks.after_commit if last_checks is not None else WriteLastChecksNow(store),
    ]
    if not defer_incidents:
        after_commit.append(EvaluateIncidents(incidents or IncidentEngine()))
    return await ResultsIngest(store, after_commit).record(session, results)
