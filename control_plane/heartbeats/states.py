"""HeartbeatState rows as the pings and the deadline sweep share them: creating one once, its open
runs (rid -> start), and the deterministic ids of the results the sweep writes."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.timefmt import iso, parse_iso
from control_plane.db import insert_ignoring_conflicts
from control_plane.heartbeats.schedule import Schedule, next_due
from control_plane.models import HeartbeatState, Monitor

MAX_OPEN_RUNS = 100  # a job that starts and never finishes must not grow its row without bound
NO_RID = ""  # the open run of starts sent without a rid
# An open run's value is its start (ISO); an overrun already reported carries this after it.
_OVERRUN_MARK = " overrun"


def first_deadline_anchor(monitor: Monitor | Any, last_ping_at: datetime | None) -> datetime:
    """What a heartbeat's first deadline counts from when it has none: the monitor's creation,
    its last change (a resume sets it), or its last ping, whichever is latest."""
    moments = [monitor.created_at, monitor.updated_at, last_ping_at]
    return max(moment for moment in moments if moment is not None)


async def insert_missing_states(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Create these states unless they exist (another replica or ping made them meanwhile)."""
    if not rows:
        return
    statement = insert_ignoring_conflicts(session, HeartbeatState, HeartbeatState.monitor_id)
    await session.execute(statement, rows)


async def locked_state(session: AsyncSession, monitor: Monitor, schedule: Schedule) -> HeartbeatState:
    """The monitor's state, locked until the transaction ends (created first if it has none)."""
    query = select(HeartbeatState).where(HeartbeatState.monitor_id == monitor.id).with_for_update()
    state = await session.scalar(query)
    if state is None:
        due_at = next_due(schedule, first_deadline_anchor(monitor, None)) if monitor.is_active else None
        await insert_missing_states(
            session, [{"monitor_id": monitor.id, "open_runs": {}, "due_at": due_at, "version": 0}]
        )
        state = await session.scalar(query)
    assert state is not None
    return state


def run_start(value: str) -> datetime:
    return parse_iso(value.split(" ", 1)[0])


def run_overrun_reported(value: str) -> bool:
    return value.endswith(_OVERRUN_MARK)


def mark_overrun(value: str) -> str:
    return value if run_overrun_reported(value) else value + _OVERRUN_MARK


def with_run_started(open_runs: dict[str, str], rid: str, at: datetime) -> dict[str, str]:
    """The open runs with `rid` (re)started at `at`; the oldest dropped past MAX_OPEN_RUNS."""
    runs = {key: value for key, value in open_runs.items() if key != rid}
    runs[rid] = iso(at) or ""
    if len(runs) > MAX_OPEN_RUNS:
        newest = sorted(runs.items(), key=lambda item: run_start(item[1]))[-MAX_OPEN_RUNS:]
        runs = dict(newest)
    return runs


def derived_id(*parts: str) -> str:
    """A result id that is the same for the same report, so a report written twice (two replicas,
    a retried transaction) is stored once: results are inserted idempotently by id."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()[:17]
    return "chk_" + base64.b32encode(digest).decode().rstrip("=").lower()
