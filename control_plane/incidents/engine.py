"""The incident engine: results in, incidents out.

Each stored result is queued (incident_backlog) in its batch's transaction. After the batch
commits, `evaluate_results` takes that batch's queued rows and applies them in one transaction:
per monitor and region it folds the new results into the region's state row, judges the monitor
(quorum of failing regions, failure rate), and writes any incident change with its timeline entry
and outbox event. The queue rows are deleted in that same transaction, so each result is evaluated
exactly once; what a crash leaves queued, the queue job and the sweep (`evaluate_queued`) take. Set-based per
batch: a handful of statements whatever its size, and nothing at all written for a monitor whose
state did not change but for its region rows.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.id_sets import among
from control_plane.core.timefmt import utcnow
from control_plane.incidents.changes import announce_events, forget_events
from control_plane.incidents.fold import Observation, Region, fold_region
from control_plane.incidents.judge import MonitorJudge, MonitorRow
from control_plane.incidents.states import (
    lock_monitor_states,
    read_region_states,
    take_queued,
    take_results,
    write_region_states,
)
from control_plane.models import Monitor, MonitorState

log = logging.getLogger(__name__)


class StateConflict(Exception):
    """Another writer changed a monitor's state between our read and our write: evaluate again."""


@dataclass(slots=True)
class Evaluated:
    results: int = 0  # taken from the queue and applied
    opened: int = 0
    resolved: int = 0


class IncidentEngine:
    def __init__(self, clock: Callable[[], datetime] = utcnow, *, attempts: int = 5) -> None:
        self._clock = clock
        self._attempts = attempts

    async def evaluate_results(self, session: AsyncSession, result_ids: Sequence[str]) -> Evaluated:
        """Evaluate these stored results (those still queued); committed here. On a conflict with
        another replica the transaction is retried; if it keeps failing, the results stay queued
        for the sweep and this logs instead of raising (the results path must not fail for it)."""
        if not result_ids:
            return Evaluated()

        async def take() -> tuple[list[Observation], int]:
            return await take_results(session, result_ids), 0

        return await self._run(session, take)

    async def evaluate_queued(
        self, session: AsyncSession, *, limit: int, queued_before: datetime | None = None
    ) -> Evaluated:
        """Evaluate up to `limit` queued results, oldest first (those queued before
        `queued_before`, if given), skipping rows another replica holds; committed here."""
        return await self._run(
            session, lambda: take_queued(session, limit=limit, queued_before=queued_before)
        )

    async def _run(
        self, session: AsyncSession, take: Callable[[], Awaitable[tuple[list[Observation], int]]]
    ) -> Evaluated:
        """`take` unqueues results: those to evaluate, and how many it already applied itself."""
        for attempt in range(1, self._attempts + 1):
            try:
                observations, folded = await take()
                outcome = await self._apply(session, observations)
                outcome.results += folded
                await announce_events(session)
                await session.commit()
                return outcome
            except (StateConflict, IntegrityError, OperationalError) as exc:
                forget_events(session)
                await session.rollback()
                if attempt == self._attempts:
                    log.warning(
                        "incident evaluation gave up after %d attempts (left queued): %s", attempt, exc
                    )
                    return Evaluated()
            except BaseException:
                await session.rollback()
                raise
        return Evaluated()

    async def _apply(self, session: AsyncSession, observations: list[Observation]) -> Evaluated:
        outcome = Evaluated(results=len(observations))
        if not observations:
            return outcome
        by_monitor: dict[str, list[Observation]] = defaultdict(list)
        for obs in observations:
            by_monitor[obs.monitor_id].append(obs)
        monitors = await _active_monitors(session, by_monitor)
        if not monitors:
            return outcome  # paused or deleted: their results count for nothing here
        states = await lock_monitor_states(session, list(monitors))
        regions = await read_region_states(session, monitors)
        now = self._clock()
        judge = MonitorJudge(session, now)
        await judge.prepare(monitors.values(), states)
        written: dict[tuple[str, str], Region] = {}
        by_region: dict[str, dict[str, Region]] = defaultdict(dict)
        for (m, r), region_state in regions.items():
            by_region[m][r] = region_state
        for monitor_id, monitor in monitors.items():
            mine = by_region[monitor_id]
            state = states[monitor_id]
            down, transitions, changed_at = state.down, list(state.transitions or []), state.changed_at
            rules = judge.rules(monitor)
            mine_observations = sorted(by_monitor[monitor_id], key=lambda o: (o.at, o.result_id))
            signalled = await judge.signals(monitor, state, mine_observations)
            outcome.opened += signalled.opened
            outcome.resolved += signalled.resolved
            # One result at a time, across regions, in the order checked: an outage that began and
            # ended inside one batch (a spool replayed after an outage) is still an incident.
            for obs in mine_observations:
                folded = fold_region(mine.get(obs.region, Region()), [obs], rules)
                if not folded.counted:
                    continue
                mine[obs.region] = written[(monitor_id, obs.region)] = folded.state
                if folded.flipped_at is not None or obs is mine_observations[-1]:
                    change = await judge.judge(monitor, down, transitions, mine, obs.at)
                    if change.down != down:
                        changed_at = obs.at
                    down, transitions = change.down, change.transitions
                    outcome.opened += change.opened
                    outcome.resolved += change.resolved
            moved = (down, transitions, changed_at) != (
                state.down,
                list(state.transitions or []),
                state.changed_at,
            )
            if moved and changed_at is not None:  # went down, up, or both within this batch
                await _compare_and_set(session, state, down, transitions, changed_at)
        await write_region_states(session, written)
        return outcome


async def _active_monitors(
    session: AsyncSession, by_monitor: dict[str, list[Observation]]
) -> dict[str, MonitorRow]:
    query = select(
        Monitor.id,
        Monitor.org_id,
        Monitor.name,
        Monitor.url,
        Monitor.type,
        Monitor.regions,
        Monitor.config,
        Monitor.interval,
    ).where(Monitor.is_active.is_(True))
    found: dict[str, MonitorRow] = {}
    for condition in among(session, Monitor.id, list(by_monitor)):
        for row in await session.execute(query.where(condition)):
            found[row.id] = MonitorRow(
                row.id,
                row.org_id,
                row.name,
                row.url,
                row.type,
                tuple(row.regions or ()),
                row.config or {},
                row.interval,
            )
    return found


def monitor_row(monitor: Monitor) -> MonitorRow:
    return MonitorRow(
        monitor.id,
        monitor.org_id,
        monitor.name,
        monitor.url,
        monitor.type,
        tuple(monitor.regions or ()),
        monitor.config or {},
        monitor.interval,
    )


async def _compare_and_set(
    session: AsyncSession, state: MonitorState, down: bool, transitions: list[str], at: datetime
) -> None:
    """`UPDATE … WHERE version = :read`: one row changed, or someone else changed it first."""
    result = await session.execute(
        update(MonitorState)
        .where(MonitorState.monitor_id == state.monitor_id, MonitorState.version == state.version)
        .values(down=down, version=state.version + 1, changed_at=at, transitions=transitions)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StateConflict(state.monitor_id)
