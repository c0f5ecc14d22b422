"""The deadline sweep with the clock moved, never slept for: late heartbeats reported once per
deadline (also by two sweeps at once), cron schedules in a time zone across DST changes, paused
monitors, first deadlines, and runs over maxRuntime."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from control_plane.core.timefmt import parse_iso
from control_plane.heartbeats.schedule import Schedule, next_cron_time, next_due
from tests.heartbeat_support import heartbeat_monitor, ping, results_of, state_of, sweep
from tests.monitor_tools import set_plan

PARIS = ZoneInfo("Europe/Paris")


def _late(results):
    return [r for r in results if r.error_kind == "heartbeat_late"]


async def test_a_heartbeat_that_stops_is_late_once_per_deadline(api, world, database):
    monitor, token = await heartbeat_monitor(api, world.alice, config={"gracePeriod": 60})
    await api.get(f"/api/heartbeat/{token}")
    state = await state_of(database, monitor["id"])
    assert state is not None and state.last_ping_at is not None
    last = state.last_ping_at
    assert state.due_at == last + timedelta(minutes=5)
    assert await sweep(database, last + timedelta(minutes=6) - timedelta(seconds=1)) == 0  # within grace
    assert await sweep(database, last + timedelta(minutes=7)) == 1
    assert await sweep(database, last + timedelta(minutes=8)) == 0  # reported already
    (late,) = _late(await results_of(database, monitor["id"]))
    assert (late.status, late.region, late.checked_at) == ("DOWN", "heartbeat", last + timedelta(minutes=6))
    assert late.error_message == "No ping for 7 minutes (expected every 5 minutes, grace 60 s)"
    checks = (await api.get(f"/api/monitors/{monitor['id']}/checks", headers=world.alice.headers)).json()
    assert checks["data"][0]["errorKind"] == "heartbeat_late" and checks["data"][0]["status"] == "DOWN"

    # The next ping sets the next deadline, reported once in its turn.
    again = last + timedelta(minutes=9)
    await ping(database, token, again)
    assert await sweep(database, again + timedelta(minutes=5, seconds=30)) == 0
    assert await sweep(database, again + timedelta(minutes=6, seconds=1)) == 1
    assert await sweep(database, again + timedelta(minutes=6, seconds=1)) == 0
    assert len(_late(await results_of(database, monitor["id"]))) == 2


async def test_the_grace_period_defaults_to_60_seconds_and_a_fail_ping_counts(api, world, database, clock):
    monitor, token = await heartbeat_monitor(api, world.alice, interval=600)
    t = clock() + timedelta(minutes=1)
    await ping(database, token, t, "fail")  # the job ran (and failed): the next run is due from it
    assert await sweep(database, t + timedelta(minutes=11) - timedelta(seconds=1)) == 0
    assert await sweep(database, t + timedelta(minutes=11)) == 1
    late = _late(await results_of(database, monitor["id"]))[0]
    assert late.error_message == "No ping for 11 minutes (expected every 10 minutes, grace 60 s)"


async def test_a_monitor_that_never_pinged_counts_from_its_creation(api, world, database):
    monitor, _ = await heartbeat_monitor(api, world.alice, config={"gracePeriod": 0})
    created = parse_iso(monitor["createdAt"])
    assert await sweep(database, created + timedelta(minutes=4)) == 0
    state = await state_of(database, monitor["id"])
    assert state is not None and state.due_at is not None
    assert abs(state.due_at - (created + timedelta(minutes=5))) < timedelta(milliseconds=1)
    assert await sweep(database, created + timedelta(minutes=5, seconds=1)) == 1
    (late,) = _late(await results_of(database, monitor["id"]))
    assert late.error_message == "No ping for 5 minutes (expected every 5 minutes, grace 0 s)"


async def test_a_paused_monitor_is_never_late_and_counts_again_from_its_resume(api, world, database, clock):
    monitor, token = await heartbeat_monitor(api, world.alice)
    await api.get(f"/api/heartbeat/{token}")
    assert (
        await api.post(f"/api/monitors/{monitor['id']}/pause", headers=world.alice.headers)
    ).status_code == 200
    far = clock() + timedelta(days=3)
    assert await sweep(database, far) == 0
    await ping(database, token, far + timedelta(minutes=1), "fail")  # accepted, still never late
    assert await sweep(database, far + timedelta(days=1)) == 0
    assert _late(await results_of(database, monitor["id"])) == []

    clock.advance(timedelta(days=5))
    resumed = await api.post(f"/api/monitors/{monitor['id']}/resume", headers=world.alice.headers)
    assert resumed.status_code == 200
    resumed_at = parse_iso(resumed.json()["data"]["updatedAt"])
    assert await sweep(database, resumed_at + timedelta(minutes=6) - timedelta(seconds=1)) == 0
    assert await sweep(database, resumed_at + timedelta(minutes=6, seconds=1)) == 1


def _change(year: int, month: int) -> datetime:
    """When Europe's clocks change that month: its last Sunday, 01:00 UTC."""
    day = datetime(year, month + 1, 1, 1, tzinfo=UTC) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() - 6) % 7)


def test_cron_times_are_wall_clock_times_of_the_zone_across_dst():
    year = datetime.now(UTC).year + 1
    spring, autumn = _change(year, 3), _change(year, 10)  # Europe's changes, 01:00 UTC
    # 02:00 Paris is 01:00 UTC in winter and 00:00 UTC in summer.
    assert next_cron_time("0 2 * * *", PARIS, spring - timedelta(days=2)) == spring - timedelta(days=1)
    summer_night = spring + timedelta(days=1) - timedelta(hours=1)
    assert next_cron_time("0 2 * * *", PARIS, spring + timedelta(hours=2)) == summer_night
    # Spring forward: 02:30 never happens that night; it is due as if the old offset held.
    assert next_cron_time("30 2 * * *", PARIS, spring - timedelta(hours=3)) == spring + timedelta(minutes=30)
    # Fall back: 02:00 happens twice; it is due once, at the first.
    first = next_cron_time("0 2 * * *", PARIS, autumn - timedelta(hours=12))
    assert first == autumn - timedelta(hours=1)
    assert next_cron_time("0 2 * * *", PARIS, first + timedelta(seconds=5)) == autumn + timedelta(days=1)
    # Hourly jobs still fire in the repeated hour's second pass (03:00 CET after 02:xx CET).
    assert next_cron_time("0 * * * *", PARIS, autumn + timedelta(minutes=10)) == autumn + timedelta(hours=1)
    hourly = Schedule(interval_seconds=3600)
    assert next_due(hourly, spring) == spring + timedelta(hours=1)


async def test_a_cron_heartbeat_is_late_by_its_zone_across_the_autumn_change(api, world, database):
    year = datetime.now(UTC).year + 1
    autumn = _change(year, 10)
    config = {"cron": "0 2 * * *", "timezone": "Europe/Paris", "gracePeriod": 60}
    monitor, token = await heartbeat_monitor(api, world.alice, config=config)
    ran = autumn - timedelta(hours=1) + timedelta(seconds=20)  # the night's 02:00 (CEST) run
    await ping(database, token, ran)
    state = await state_of(database, monitor["id"])
    assert state is not None and state.due_at == autumn + timedelta(days=1)  # 02:00 CET, once
    assert await sweep(database, autumn + timedelta(hours=1)) == 0  # the repeated 02:00 is no deadline
    assert await sweep(database, autumn + timedelta(days=1, seconds=59)) == 0
    assert await sweep(database, autumn + timedelta(days=1, minutes=2)) == 1
    (late,) = _late(await results_of(database, monitor["id"]))
    assert late.checked_at == autumn + timedelta(days=1, minutes=1)
    assert late.error_message == (
        "No ping for 1 day 1 hour (expected at 02:00 Europe/Paris (cron 0 2 * * *), grace 60 s)"
    )


async def test_a_run_over_max_runtime_is_reported_once(api, world, database, clock):
    monitor, token = await heartbeat_monitor(api, world.alice, interval=3600, config={"maxRuntime": 600})
    started = (clock() + timedelta(minutes=1)).replace(microsecond=0)
    await ping(database, token, started, "start", rid="nightly")
    assert await sweep(database, started + timedelta(minutes=9)) == 0
    assert await sweep(database, started + timedelta(minutes=12)) == 1
    assert await sweep(database, started + timedelta(minutes=13)) == 0
    (overrun,) = await results_of(database, monitor["id"])
    assert (overrun.status, overrun.error_kind) == ("DOWN", "heartbeat_max_runtime")
    assert overrun.checked_at == started + timedelta(minutes=10)
    assert overrun.error_message == (
        f"Run nightly started at {started:%Y-%m-%d %H:%M:%S} UTC still running after 12 minutes "
        "(maxRuntime 600 s)"
    )
    # Its finish still pairs with it, and is the success that ends it.
    finished = await ping(database, token, started + timedelta(minutes=14), rid="nightly")
    assert finished.status == "UP"
    last = (await results_of(database, monitor["id"]))[-1]
    assert last.details is not None and last.details["runtimeSeconds"] == 14 * 60


async def test_a_sweep_run_twice_reports_once(api, world, database, clock):
    monitors = [(await heartbeat_monitor(api, world.alice, name=f"Job {i}"))[0] for i in range(3)]
    later = clock() + timedelta(hours=1)
    assert await sweep(database, later) == 3
    assert await sweep(database, later) == 0
    for monitor in monitors:
        assert len(_late(await results_of(database, monitor["id"]))) == 1


@pytest.mark.postgres_only
async def test_two_sweeps_at_once_report_each_deadline_once(api, world, database, clock):
    await set_plan(database, world.org_a, "BUSINESS")
    monitors = [(await heartbeat_monitor(api, world.alice, name=f"Job {i}"))[0] for i in range(10)]
    await sweep(database, clock())  # states for these; the sweeps below race to create the others
    monitors += [(await heartbeat_monitor(api, world.alice, name=f"New job {i}"))[0] for i in range(10)]
    later = clock() + timedelta(hours=1)
    written = await asyncio.gather(*(sweep(database, later) for _ in range(4)))
    assert sum(written) == 20
    for monitor in monitors:
        assert len(_late(await results_of(database, monitor["id"]))) == 1


async def test_a_late_heartbeat_opens_an_incident_and_the_next_ping_resolves_it(api, world, database, clock):
    monitor, token = await heartbeat_monitor(api, world.alice)
    await api.get(f"/api/heartbeat/{token}")
    state = await state_of(database, monitor["id"])
    assert state is not None and state.last_ping_at is not None
    assert await sweep(database, state.last_ping_at + timedelta(minutes=7)) == 1
    incidents = (await api.get("/api/incidents", headers=world.alice.headers)).json()["data"]
    assert [(i["monitorId"], i["isActive"], i["cause"]) for i in incidents] == [
        (monitor["id"], True, "No ping for 7 minutes (expected every 5 minutes, grace 60 s)")
    ]
    assert (await api.get("/api/incidents", headers=world.bob.headers)).json()["data"] == []
    clock.advance(timedelta(minutes=8))
    await api.get(f"/api/heartbeat/{token}")
    (resolved,) = (await api.get("/api/incidents", headers=world.alice.headers)).json()["data"]
    assert resolved["isActive"] is False and resolved["resolvedAt"] is not None
