"""Results from agents, validated at the edge (convert.py): fence by grant epoch, store through the
results package, and say which were rejected and why."""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.agents.registry import Registration
from control_plane.core.id_sets import among
from control_plane.db import Database, database_unavailable
from control_plane.models import AssignmentGrant, Monitor
from control_plane.results import LastCheckWriter, ResultIn, record_results


class RejectReason(enum.Enum):
    INVALID = "invalid"  # malformed: the agent would send it the same way again
    UNKNOWN_MONITOR = "unknown_monitor"  # the monitor no longer exists
    FENCED = "fenced"  # run without a current grant of the monitor to this agent


@dataclass(frozen=True, slots=True)
class Rejection:
    """A result that is not stored and need not be sent again."""

    result_id: str
    reason: RejectReason
    message: str


@dataclass(frozen=True, slots=True)
class GrantedResult:
    """A valid result and the epoch of the grant the agent ran it under."""

    result: ResultIn
    epoch: int


@dataclass(slots=True)
class IngestOutcome:
    stored: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


async def ingest_batch(
    db: Database,
    sender: Registration,
    results: Sequence[GrantedResult],
    *,
    last_checks: LastCheckWriter | None = None,
    groups: IngestGroups | None = None,
) -> IngestOutcome:
    """Everything accepted is committed when this returns; the caller may then acknowledge.
    (Given a `last_checks` writer, the monitors' lastCheck follows shortly after.) Given `groups`,
    the batch is stored in one transaction with whatever other streams' batches wait beside it."""
    if not results:
        return IngestOutcome()
    if groups is not None:
        return await groups.ingest(sender, results)
    return (await ingest_together(db, [(sender, results)], last_checks=last_checks))[0]


async def ingest_together(
    db: Database,
    batches: Sequence[tuple[Registration, Sequence[GrantedResult]]],
    *,
    last_checks: LastCheckWriter | None = None,
) -> list[IngestOutcome]:
    """Several senders' batches in one transaction: each fenced by its own sender's grants, all
    stored at once; an outcome per batch, in order. A result id in two of them is stored once, and
    counted as stored in the first."""
    outcomes = [IngestOutcome() for _ in batches]
    accepted: list[list[ResultIn]] = []
    async with db.session() as session:
        found = await _monitors_and_grants(session, batches)
        for (sender, results), outcome in zip(batches, outcomes, strict=True):
            existing, grants = found[sender.region]
            mine: list[ResultIn] = []
            for granted in results:
                rejection = _fenced(sender, granted, existing, grants)
                if rejection is None:
                    mine.append(granted.result)
                else:
                    outcome.rejected.append(rejection)
            accepted.append(mine)
        # Acknowledged without waiting for the incident engine: the workers' job takes the queue.
        everything = [result for mine in accepted for result in mine]
        recorded = await record_results(session, everything, last_checks=last_checks, defer_incidents=True)
    inserted, orphaned = set(recorded.inserted), set(recorded.orphaned)
    for mine, outcome in zip(accepted, outcomes, strict=True):
        for result in mine:
            if result.id in orphaned:
                outcome.rejected.append(
                    Rejection(result.id, RejectReason.UNKNOWN_MONITOR, "the monitor no longer exists")
                )
            elif result.id in inserted:
                outcome.stored += 1
                inserted.discard(result.id)  # another batch's copy of it is a duplicate
            else:
                outcome.duplicates += 1
    return outcomes


# Per region: the named monitors that exist, with their organization, and their grants by
# (monitor, epoch).
_Found = tuple[dict[str, str], dict[tuple[str, int], Any]]


async def _monitors_and_grants(
    session: AsyncSession, batches: Sequence[tuple[Registration, Sequence[GrantedResult]]]
) -> dict[str, _Found]:
    """Per region of the senders: which named monitors exist (and whose), and the region's grants of them by
    (monitor, epoch). One query per chunk of ids (a batch of 500 is one), by the grants' primary key
    prefix (monitor, region); a row-value IN over 500 (monitor, region, epoch) triples made
    PostgreSQL scan the whole region."""
    named: dict[str, set[str]] = {}
    for sender, results in batches:
        named.setdefault(sender.region, set()).update(granted.result.monitor_id for granted in results)
    found: dict[str, _Found] = {}
    for region, monitor_ids in named.items():
        lookup = select(
            Monitor.id,
            Monitor.org_id,
            AssignmentGrant.epoch,
            AssignmentGrant.member_key,
            AssignmentGrant.revoked_at,
        ).outerjoin(
            AssignmentGrant,
            and_(AssignmentGrant.monitor_id == Monitor.id, AssignmentGrant.region == region),
        )
        rows: list[Any] = []
        for condition in among(session, Monitor.id, monitor_ids):
            rows += (await session.execute(lookup.where(condition))).all()
        found[region] = (
            {row.id: row.org_id for row in rows},
            {(row.id, row.epoch): row for row in rows if row.epoch is not None},
        )
    return found


def _fenced(
    sender: Registration, granted: GrantedResult, existing: dict[str, str], grants: dict[tuple[str, int], Any]
) -> Rejection | None:
    """Why the sender's result is not stored, or None: it ran under a current grant to it.

    To an organization's private agent another organization's monitor does not exist: it is told
    what it would be told of an id that was never made, not that the id is somebody's."""
    result, epoch = granted.result, granted.epoch
    grant = grants.get((result.monitor_id, epoch))
    owner = existing.get(result.monitor_id)
    if owner is None or (sender.org_id is not None and owner != sender.org_id):
        return Rejection(result.id, RejectReason.UNKNOWN_MONITOR, "the monitor no longer exists")
    if grant is None or grant.member_key != sender.member_key:
        return Rejection(result.id, RejectReason.FENCED, f"no grant of epoch {epoch} to this agent")
    if grant.revoked_at is not None and result.scheduled_at and result.scheduled_at >= grant.revoked_at:
        return Rejection(result.id, RejectReason.FENCED, "scheduled after the monitor moved to another agent")
    return None


@dataclass(slots=True)
class _Waiting:
    sender: Registration
    results: Sequence[GrantedResult]
    done: asyncio.Future[IngestOutcome]


class IngestGroups:
    """Every stream's batches stored a group at a time: a committer takes whatever batches wait (up
    to `max_results` results) into one transaction.

    200 agents each sending a few results every half second made 400 transactions a second of 4
    results each, and their cost, per transaction and not per result, left the event loop no time
    to take in the agents' calls (bench/agents_at_scale.py). A group costs what its results cost.
    Nothing waits to fill a group: a batch is taken as soon as a committer is free, so alone it is
    stored as soon as before. If a group fails, each of its batches is tried alone, so one batch
    that cannot be stored fails only its own stream."""

    def __init__(
        self,
        db: Database,
        last_checks: LastCheckWriter | None = None,
        *,
        committers: int = 4,
        max_results: int = 5_000,
    ) -> None:
        self._db = db
        self._last_checks = last_checks
        self._committers = committers
        self._max_results = max_results
        self._waiting: deque[_Waiting] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._commit_groups(), name=f"traxo-results-committer-{n}")
            for n in range(self._committers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while self._waiting:
            waiting = self._waiting.popleft()
            if not waiting.done.done():
                waiting.done.set_exception(RuntimeError("the results committers stopped"))

    async def ingest(self, sender: Registration, results: Sequence[GrantedResult]) -> IngestOutcome:
        if not self._tasks or all(task.done() for task in self._tasks):
            raise RuntimeError("the results committers are not running")
        done: asyncio.Future[IngestOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(sender, results, done))
        self._wake.set()
        return await done

    def _take(self) -> list[_Waiting]:
        group: list[_Waiting] = []
        size = 0
        while self._waiting and (not group or size + len(self._waiting[0].results) <= self._max_results):
            waiting = self._waiting.popleft()
            if waiting.done.done():  # its stream was cancelled meanwhile
                continue
            group.append(waiting)
            size += len(waiting.results)
        if not self._waiting:
            self._wake.clear()
        return group

    async def _commit_groups(self) -> None:
        while True:
            await self._wake.wait()
            group = self._take()
            try:
                await self._commit(group)
            finally:  # cancelled (stopping) midway: what it had not answered yet fails, not hangs
                for waiting in group:
                    _settle(waiting, RuntimeError("the results committers stopped"))

    async def _commit(self, group: list[_Waiting]) -> None:
        group = [waiting for waiting in group if not waiting.done.done()]  # streams cancelled meanwhile
        if not group:
            return
        try:
            outcomes = await ingest_together(
                self._db, [(w.sender, w.results) for w in group], last_checks=self._last_checks
            )
        except Exception as exc:
            # The database away or busy fails every batch alike: tried one by one, a group of 30
            # would take 30 pool or lock timeouts to answer, its streams holding the bound meanwhile.
            if len(group) == 1 or database_unavailable(exc):
                for waiting in group:
                    _settle(waiting, exc)
                return
            for waiting in group:  # alone, each fails (or not) on its own
                await self._commit([waiting])
            return
        for waiting, outcome in zip(group, outcomes, strict=True):
            _settle(waiting, outcome)


def _settle(waiting: _Waiting, outcome: IngestOutcome | BaseException) -> None:
    if waiting.done.done():
        return
    if isinstance(outcome, BaseException):
        waiting.done.set_exception(outcome)
    else:
        waiting.done.set_result(outcome)
