"""A ping from a job: a finish (success, failure, exit code) is stored as the monitor's check result
from the "heartbeat" region, so checks, uptime and incidents treat heartbeats like any type; a
start is not a result, it opens a run that its finish (same rid) is timed against."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.errors import NotFound
from control_plane.core.ids import new_id
from control_plane.heartbeats import HEARTBEAT_REGION
from control_plane.heartbeats.schedule import Schedule, next_due, schedule_of
from control_plane.heartbeats.states import NO_RID, locked_state, run_start, with_run_started
from control_plane.models import HeartbeatState, Monitor
from control_plane.results import ResultIn, record_results

PING_SUCCESS = "success"
PING_FAIL = "fail"
PING_START = "start"
PING_EXIT = "exit"


@dataclass(frozen=True, slots=True)
class Ping:
    """One request to /api/heartbeat/{token}[/start|/fail|/{exitCode}], validated at the edge."""

    kind: str  # success | fail | start | exit
    exit_code: int | None = None
    rid: str | None = None
    body: bytes = b""  # the start of the request body: what is kept as the ping's log
    body_bytes: int = 0  # the whole body's size
    user_agent: str | None = None
    source_ip: str | None = None


@dataclass(frozen=True, slots=True)
class PingOutcome:
    monitor_id: str
    status: str | None  # UP | DOWN; None for a start
    result_id: str | None  # the stored result; None for a start


async def record_ping(session: AsyncSession, token: str, ping: Ping, *, now: datetime) -> PingOutcome:
    """Record a ping for the HEARTBEAT monitor whose token this is (NotFound otherwise), paused or
    not, and move its deadline. Committed here, state and result in one transaction."""
    monitor = await session.scalar(
        select(Monitor).where(Monitor.heartbeat_token == token, Monitor.type == "HEARTBEAT")
    )
    if monitor is None:
        raise NotFound("Heartbeat not found: no HEARTBEAT monitor has this token")
    monitor_id = monitor.id
    schedule = schedule_of(monitor.interval, monitor.config)

    async def updated_state() -> tuple[HeartbeatState, bool]:
        # Again at each attempt: a retried one starts from a rollback, which undid the state's
        # changes and expired the monitor (reading an expired attribute is I/O outside the
        # session's await: a 500).
        if inspect(monitor).expired_attributes:
            await session.refresh(monitor)
        state = await locked_state(session, monitor, schedule)
        state.last_ping_at = now
        state.version += 1
        if not monitor.is_active:
            state.due_at = None  # paused: never late; its deadline is set again once it is resumed
        return state, monitor.is_active

    if ping.kind == PING_START:
        state, _ = await updated_state()
        state.last_start_at = now
        state.open_runs = with_run_started(state.open_runs or {}, ping.rid or NO_RID, now)
        await session.commit()
        return PingOutcome(monitor_id, None, None)

    finished: list[ResultIn] = []

    async def the_finish() -> list[ResultIn]:
        state, active = await updated_state()
        result = _finish(monitor_id, ping, schedule, _take_run(state, ping.rid), now)
        if result.status == "UP":
            state.last_success_at = now
        if active:
            # A failure is a ping too: the job ran, so the next one is due on schedule from now.
            state.due_at = next_due(schedule, now)
        finished[:] = [result]
        return finished

    await record_results(session, the_finish)  # commits the state with the result
    return PingOutcome(monitor_id, finished[0].status, finished[0].id)


def _take_run(state: HeartbeatState, rid: str | None) -> datetime | None:
    """The start of the run this finish ends (removed from the open runs), if one is open."""
    runs = dict(state.open_runs or {})
    started = runs.pop(rid or NO_RID, None)
    if started is None:
        return None
    state.open_runs = runs
    return run_start(started)


def _finish(
    monitor_id: str, ping: Ping, schedule: Schedule, started_at: datetime | None, now: datetime
) -> ResultIn:
    runtime = None if started_at is None else max(0.0, (now - started_at).total_seconds())
    status, error_kind, error_message = "UP", None, None
    if ping.kind == PING_FAIL:
        status, error_kind, error_message = "DOWN", "heartbeat_fail", "Job reported failure"
    elif ping.kind == PING_EXIT and ping.exit_code:
        status, error_kind, error_message = "DOWN", "exit_code", f"Exit code {ping.exit_code}"
    elif runtime is not None and schedule.min_runtime_seconds and runtime < schedule.min_runtime_seconds:
        status, error_kind = "DOWN", "heartbeat_min_runtime"
        error_message = (
            f"Run finished in {_seconds(runtime)} s, under minRuntime {schedule.min_runtime_seconds} s"
        )
    return ResultIn(
        id=new_id("chk"),
        monitor_id=monitor_id,
        region=HEARTBEAT_REGION,
        status=status,
        checked_at=now,
        response_time=None if runtime is None else round(runtime * 1000, 3),
        error_kind=error_kind,
        error_message=error_message,
        details=_details(ping, runtime),
    )


def _details(ping: Ping, runtime: float | None) -> dict[str, Any]:
    details: dict[str, Any] = {
        "ping": PING_EXIT if ping.kind == PING_EXIT else ping.kind,
        "exitCode": ping.exit_code,
        "rid": ping.rid,
        "runtimeSeconds": None if runtime is None else round(runtime, 3),
        "userAgent": ping.user_agent,
        "sourceIp": ping.source_ip,
    }
    if ping.body_bytes:
        # PostgreSQL's JSON holds no NUL: one is replaced as an undecodable byte is.
        details["log"] = ping.body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        details["logBytes"] = ping.body_bytes
        details["logTruncated"] = len(ping.body) < ping.body_bytes
    return {key: value for key, value in details.items() if value is not None}


def _seconds(value: float) -> str:
    rounded = round(value, 1)
    return str(int(rounded)) if rounded == int(rounded) else str(rounded)
