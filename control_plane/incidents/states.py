"""The engine's state rows: taken from the queue, locked, and written back.

Monitor states are locked (`FOR UPDATE`, in id order, so two replicas never deadlock) before
anything of a monitor is read; a replica evaluating the same monitor waits, then reads what the
first wrote. Region states are only written under their monitor's lock. (SQLite has one writer
at a time and ignores `FOR UPDATE`.)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.id_sets import among
from control_plane.incidents.fold import Observation, Region
from control_plane.incidents.postgres_steady import take_folding_steady
from control_plane.incidents.state_rows import create_missing_states
from control_plane.models import IncidentBacklog, MonitorState, RegionState

_BACKLOG = IncidentBacklog.__table__
_REGIONS: Table = RegionState.__table__  # type: ignore[assignment]


def _observation(row: Any) -> Observation:
    return Observation(
        row.result_id, row.monitor_id, row.region, row.checked_at, row.up, row.error, row.signal
    )


async def take_results(session: AsyncSession, result_ids: Sequence[str]) -> list[Observation]:
    """Unqueue these results (those still queued): this transaction evaluates them, or, rolled
    back, leaves them queued."""
    taken: list[Observation] = []
    for condition in among(session, IncidentBacklog.result_id, result_ids):
        statement = delete(IncidentBacklog).where(condition).returning(*_BACKLOG.c)
        rows = await session.execute(statement.execution_options(synchronize_session=False))
        taken += [_observation(row) for row in rows]
    return taken


async def take_queued(
    session: AsyncSession, *, limit: int, queued_before: datetime | None = None
) -> tuple[list[Observation], int]:
    """Up to `limit` queued results, oldest first (queued before `queued_before`, if given); rows
    another transaction holds are skipped. Returns those the engine must evaluate, and how many
    it need not: on PostgreSQL, plain successes of regions that are not failing are folded into
    their state rows in the same statement (postgres_steady.py)."""
    if session.get_bind().dialect.name == "postgresql":
        return await take_folding_steady(session, limit=limit, queued_before=queued_before)
    oldest = select(IncidentBacklog.result_id).order_by(IncidentBacklog.queued_at).limit(limit)
    if queued_before is not None:
        oldest = oldest.where(IncidentBacklog.queued_at < queued_before)
    # One statement: pick (skipping rows others hold) and unqueue.
    taken = (
        delete(IncidentBacklog)
        .where(IncidentBacklog.result_id.in_(oldest.with_for_update(skip_locked=True)))
        .returning(*_BACKLOG.c)
        .execution_options(synchronize_session=False)
    )
    return [_observation(row) for row in await session.execute(taken)], 0


async def lock_monitor_states(session: AsyncSession, monitor_ids: Collection[str]) -> dict[str, MonitorState]:
    """The states of these monitors, created if missing, locked for this transaction.

    The missing rows are inserted before any row is locked, then every row is locked in one pass in
    id order. (An inserted row is held from its insert on: inserting after locking the others, and
    then locking rows another transaction had created meanwhile, took locks out of order, and
    deadlocked with the queue under load: bench/agents_at_scale.py, tests/incidents/test_lock_order.py.)
    """
    await create_missing_states(session, monitor_ids)
    states: dict[str, MonitorState] = {}
    for condition in among(session, MonitorState.monitor_id, monitor_ids):
        query = select(MonitorState).where(condition).order_by(MonitorState.monitor_id).with_for_update()
        for state in await session.scalars(query):
            states[state.monitor_id] = state
    return states


async def read_region_states(
    session: AsyncSession, monitor_ids: Iterable[str]
) -> dict[tuple[str, str], Region]:
    found: dict[tuple[str, str], Region] = {}
    for condition in among(session, RegionState.monitor_id, list(monitor_ids)):
        for row in await session.execute(select(*_REGIONS.c).where(condition)):
            found[(row.monitor_id, row.region)] = Region(
                failing=row.failing,
                consecutive_failures=row.consecutive_failures,
                consecutive_successes=row.consecutive_successes,
                newest_at=row.newest_at,
                failing_since=row.failing_since,
                last_error=row.last_error,
                no_data=row.no_data,
            )
    return found


async def write_region_states(session: AsyncSession, states: dict[tuple[str, str], Region]) -> None:
    """Insert or overwrite these region states (their monitors are locked by this transaction)."""
    if not states:
        return
    rows = [
        {
            "monitor_id": monitor_id,
            "region": region,
            "failing": s.failing,
            "consecutive_failures": s.consecutive_failures,
            "consecutive_successes": s.consecutive_successes,
            "newest_at": s.newest_at,
            "failing_since": s.failing_since,
            "last_error": s.last_error,
            "no_data": s.no_data,
        }
        for (monitor_id, region), s in sorted(states.items())
    ]
    if session.get_bind().dialect.name == "postgresql":
        # One statement of arrays, the same text whatever the count (so its plan is cached); a
        # multi-row VALUES took SQLAlchemy longer to compile than PostgreSQL to run it.
        columns = {name: [row[name] for row in rows] for name in _COLUMNS}
        await session.execute(_PG_UPSERT, columns)
    else:  # SQLite runs an executemany in C, statement by statement, without a round trip
        statement = sqlite.insert(_REGIONS)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["monitor_id", "region"],
                set_={c: statement.excluded[c] for c in _COLUMNS[2:]},
            ),
            rows,
        )


_COLUMNS = (
    "monitor_id",
    "region",
    "failing",
    "consecutive_failures",
    "consecutive_successes",
    "newest_at",
    "failing_since",
    "last_error",
    "no_data",
)
_PG_TYPES = ("text", "text", "boolean", "integer", "integer", "timestamptz", "timestamptz", "text", "boolean")
_ARRAYS = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in zip(_COLUMNS, _PG_TYPES, strict=True))
_PG_UPSERT = text(
    f"INSERT INTO monitor_region_states ({', '.join(_COLUMNS)}) SELECT * FROM unnest({_ARRAYS}) "
    "ON CONFLICT (monitor_id, region) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[2:])
)
