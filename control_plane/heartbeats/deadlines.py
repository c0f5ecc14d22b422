"""The deadline sweep: a DOWN result for each heartbeat whose deadline (due + grace) has passed
without a ping, and for each run open longer than its maxRuntime; each reported once.

Every report is claimed compare-and-set on the state's version in the transaction that stores its
result, and the result's id is derived from what it reports, so two replicas sweeping at once (or
a sweep run twice) store it once. Paused monitors are never reported: their deadline is dropped
when it comes, and set again from the resume.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.timefmt import iso
from control_plane.heartbeats import HEARTBEAT_REGION
from control_plane.heartbeats.schedule import describe_expectation, duration_words, next_due, schedule_of
from control_plane.heartbeats.states import (
    derived_id,
    first_deadline_anchor,
    insert_missing_states,
    mark_overrun,
    run_overrun_reported,
    run_start,
)
from control_plane.models import HeartbeatState, Monitor
from control_plane.results import ResultIn, record_results

_CLAIMS_AT_ONCE = 200  # (monitor id, version) pairs per statement: under SQLite's 999 variables

_MONITOR_COLUMNS = (
    Monitor.id,
    Monitor.interval,
    Monitor.config,
    Monitor.is_active,
    Monitor.created_at,
    Monitor.updated_at,
)


async def sweep_heartbeats(session: AsyncSession, *, now: datetime) -> int:
    """Report what is late at `now`; returns the results written. Committed here."""
    await _arm(session)
    results = await _late(session, now)
    results += await _overruns(session, now)
    if results:
        await record_results(session, results)  # commits the claims with their results
    else:
        await session.commit()
    return len(results)


async def _arm(session: AsyncSession) -> None:
    """Give a first deadline to active heartbeats without one: never pinged, or just resumed."""
    rows = (
        await session.execute(
            select(
                *_MONITOR_COLUMNS, HeartbeatState.monitor_id.label("state_of"), HeartbeatState.last_ping_at
            )
            .outerjoin(HeartbeatState, HeartbeatState.monitor_id == Monitor.id)
            .where(
                Monitor.type == "HEARTBEAT",
                Monitor.is_active.is_(True),
                HeartbeatState.due_at.is_(None),
            )
        )
    ).all()
    missing: list[dict[str, Any]] = []
    for row in rows:
        due_at = next_due(schedule_of(row.interval, row.config), first_deadline_anchor(row, row.last_ping_at))
        if row.state_of is None:
            missing.append({"monitor_id": row.id, "open_runs": {}, "due_at": due_at, "version": 0})
        else:
            await session.execute(
                update(HeartbeatState)
                .where(HeartbeatState.monitor_id == row.id, HeartbeatState.due_at.is_(None))
                .values(due_at=due_at, version=HeartbeatState.version + 1)
            )
    await insert_missing_states(session, missing)


async def _late(session: AsyncSession, now: datetime) -> list[ResultIn]:
    rows = (
        await session.execute(
            select(
                *_MONITOR_COLUMNS,
                HeartbeatState.due_at,
                HeartbeatState.version,
                HeartbeatState.last_ping_at,
            )
            .join(Monitor, Monitor.id == HeartbeatState.monitor_id)
            .where(
                HeartbeatState.due_at <= now,  # ix_heartbeat_states_due_at; grace is added below
                (HeartbeatState.missed_due_at.is_(None))
                | (HeartbeatState.missed_due_at != HeartbeatState.due_at),
                Monitor.type == "HEARTBEAT",
            )
        )
    ).all()
    paused = [(row.id, row.version) for row in rows if not row.is_active]
    await _claim(session, paused, {HeartbeatState.due_at: None})
    reports: dict[str, ResultIn] = {}
    for row in rows:
        schedule = schedule_of(row.interval, row.config)
        deadline = row.due_at + schedule.grace
        if not row.is_active or deadline > now:
            continue
        since = row.last_ping_at or first_deadline_anchor(row, None)
        reports[row.id] = ResultIn(
            id=derived_id("late", row.id, iso(row.due_at) or ""),
            monitor_id=row.id,
            region=HEARTBEAT_REGION,
            status="DOWN",
            checked_at=deadline,
            error_kind="heartbeat_late",
            error_message=(
                f"No ping for {duration_words((now - since).total_seconds())} "
                f"({describe_expectation(schedule, row.due_at)})"
            ),
            details={"ping": "late", "dueAt": iso(row.due_at), "lastPingAt": iso(row.last_ping_at)},
        )
    keys = [(row.id, row.version) for row in rows if row.id in reports]
    claimed = await _claim(session, keys, {HeartbeatState.missed_due_at: HeartbeatState.due_at})
    return [reports[monitor_id] for monitor_id in sorted(claimed)]


async def _claim(session: AsyncSession, keys: list[tuple[str, int]], values: dict[Any, Any]) -> set[str]:
    """Compare-and-set over (monitor id, version): set `values` (and the next version) where the
    version is still the one read. Returns the monitor ids this transaction claimed."""
    claimed: set[str] = set()
    for start in range(0, len(keys), _CLAIMS_AT_ONCE):
        chunk = keys[start : start + _CLAIMS_AT_ONCE]
        statement = (
            update(HeartbeatState)
            .where(tuple_(HeartbeatState.monitor_id, HeartbeatState.version).in_(chunk))
            .values({**values, HeartbeatState.version: HeartbeatState.version + 1})
            .returning(HeartbeatState.monitor_id)
        )
        claimed.update((await session.execute(statement)).scalars())
    return claimed


async def _overruns(session: AsyncSession, now: datetime) -> list[ResultIn]:
    """Runs started and not finished within their monitor's maxRuntime, not yet reported."""
    rows = (
        await session.execute(
            select(
                Monitor.id, Monitor.interval, Monitor.config, HeartbeatState.open_runs, HeartbeatState.version
            )
            .join(Monitor, Monitor.id == HeartbeatState.monitor_id)
            .where(
                HeartbeatState.last_start_at <= now - timedelta(seconds=1),
                Monitor.type == "HEARTBEAT",
                Monitor.is_active.is_(True),
            )
        )
    ).all()
    results: list[ResultIn] = []
    for row in rows:
        limit = schedule_of(row.interval, row.config).max_runtime_seconds
        if not limit or not row.open_runs:
            continue
        runs = dict(row.open_runs)
        found: list[ResultIn] = []
        for rid, value in sorted(runs.items()):
            started = run_start(value)
            if run_overrun_reported(value) or started + timedelta(seconds=limit) > now:
                continue
            runs[rid] = mark_overrun(value)
            found.append(_overrun_result(row.id, rid, started, limit, now))
        if found:
            claimed = await session.execute(
                update(HeartbeatState)
                .where(HeartbeatState.monitor_id == row.id, HeartbeatState.version == row.version)
                .values(open_runs=runs, version=HeartbeatState.version + 1)
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                results += found
    return results


def _overrun_result(monitor_id: str, rid: str, started: datetime, limit: int, now: datetime) -> ResultIn:
    run = f"Run {rid}" if rid else "Run"
    return ResultIn(
        id=derived_id("overrun", monitor_id, rid, iso(started) or ""),
        monitor_id=monitor_id,
        region=HEARTBEAT_REGION,
        status="DOWN",
        checked_at=started + timedelta(seconds=limit),
        error_kind="heartbeat_max_runtime",
        error_message=(
            f"{run} started at {started:%Y-%m-%d %H:%M:%S} UTC still running after "
            f"{duration_words((now - started).total_seconds())} (maxRuntime {limit} s)"
        ),
        details={"ping": "overrun", "startedAt": iso(started), **({"rid": rid} if rid else {})},
    )
