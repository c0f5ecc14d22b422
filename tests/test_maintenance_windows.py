"""The maintenance schedule the engine and uptime reports read: monitors_in_maintenance and
maintenance_intervals against real rows, one-off and recurring windows (across DST in Paris)."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

from control_plane.core.ids import new_id
from control_plane.db import Database
from control_plane.maintenance import maintenance_intervals, monitors_in_maintenance
from control_plane.maintenance.windows import Schedule, occurrences, status
from control_plane.models import MaintenanceWindow
from tests.conftest import World
from tests.factories import insert_monitor


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def add_window(
    db: Database, org_id: str, monitor_id: str | None, start: str, end: str, **fields: object
) -> str:
    window = MaintenanceWindow(
        id=new_id("mw"),
        org_id=org_id,
        monitor_id=monitor_id,
        title="Window",
        starts_at=at(start),
        ends_at=at(end),
        created_at=at(start),
        updated_at=at(start),
        **fields,
    )
    async with db.session() as session:
        session.add(window)
        await session.commit()
    return window.id


# Pure schedule -------------------------------------------------------------------------------


def test_daily_window_across_paris_dst_changes() -> None:
    """02:30 Paris for an hour: 00:30Z in summer time, 01:30Z in winter time; on the spring-forward
    night 02:30 does not exist and the occurrence starts at 03:00 CEST; on the fall-back night the
    repeated 02:30 runs once, at its first pass."""
    spring = Schedule(at("2025-03-01"), at("2025-04-01"), "30 2 * * *", 60, "Europe/Paris")
    assert [o[0] for o in occurrences(spring, at("2025-03-29"), at("2025-04-01"))] == [
        at("2025-03-29T01:30"),
        at("2025-03-30T01:00"),
        at("2025-03-31T00:30"),
    ]
    autumn = Schedule(at("2025-10-01"), at("2025-11-01"), "30 2 * * *", 60, "Europe/Paris")
    assert list(occurrences(autumn, at("2025-10-25"), at("2025-10-28"))) == [
        (at("2025-10-25T00:30"), at("2025-10-25T01:30")),
        (at("2025-10-26T00:30"), at("2025-10-26T01:30")),  # the first 02:30, still CEST
        (at("2025-10-27T01:30"), at("2025-10-27T02:30")),
    ]


def test_hourly_window_keeps_both_passes_of_the_repeated_hour() -> None:
    hourly = Schedule(at("2025-10-01"), at("2025-11-01"), "0 * * * *", 30, "Europe/Paris")
    starts = [o[0] for o in occurrences(hourly, at("2025-10-25T23:00"), at("2025-10-26T03:00"))]
    assert starts == [
        at("2025-10-25T23:00"),
        at("2025-10-26T00:00"),
        at("2025-10-26T01:00"),
        at("2025-10-26T02:00"),
    ]


def test_recurring_series_is_bounded_and_cut_at_its_end() -> None:
    series = Schedule(at("2025-06-02T10:00"), at("2025-06-04T03:30"), "0 3 * * *", 120, "UTC")
    assert list(occurrences(series, at("2025-06-01"), at("2025-06-10"))) == [
        (at("2025-06-03T03:00"), at("2025-06-03T05:00")),
        (at("2025-06-04T03:00"), at("2025-06-04T03:30")),
    ]
    # An occurrence that began before the range still overlaps it.
    assert list(occurrences(series, at("2025-06-03T04:00"), at("2025-06-03T04:30"))) == [
        (at("2025-06-03T03:00"), at("2025-06-03T05:00"))
    ]


def test_status_of_one_off_recurring_and_disabled_windows() -> None:
    one_off = Schedule(at("2025-06-20T02:00"), at("2025-06-20T04:00"))
    assert status(one_off, True, at("2025-06-20T01:59")) == "upcoming"
    assert status(one_off, True, at("2025-06-20T02:00")) == "active"
    assert status(one_off, True, at("2025-06-20T04:00")) == "past"
    assert status(one_off, False, at("2025-06-20T03:00")) is None
    assert status(one_off, False, at("2025-06-20T05:00")) == "past"
    daily = Schedule(at("2025-06-01"), at("2025-07-01"), "0 2 * * *", 60, "UTC")
    assert status(daily, True, at("2025-06-10T02:30")) == "active"
    assert status(daily, True, at("2025-06-10T03:30")) == "upcoming"
    assert status(daily, True, at("2025-06-30T03:30")) == "past"  # no occurrence left


def test_a_year_of_hourly_occurrences_is_fast() -> None:
    hourly = Schedule(at("2020-01-01"), at("2030-01-01"), "0 * * * *", 30, "Europe/Paris")
    began = time.perf_counter()
    count = sum(1 for _ in occurrences(hourly, at("2025-01-01"), at("2026-02-05")))
    assert count == 400 * 24
    assert time.perf_counter() - began < 3


# Against the database ------------------------------------------------------------------------


async def test_monitors_in_maintenance_own_org_wide_and_disabled(database: Database, world: World) -> None:
    own = await insert_monitor(database, world.org_a)
    other = await insert_monitor(database, world.org_a)
    b_monitor = await insert_monitor(database, world.org_b)
    await add_window(database, world.org_a, own.id, "2025-06-20T02:00", "2025-06-20T04:00")
    await add_window(database, world.org_b, None, "2025-06-20T03:00", "2025-06-20T05:00")
    await add_window(database, world.org_a, None, "2025-06-20T00:00", "2025-06-21T00:00", is_active=False)
    pairs = [(own.id, world.org_a), (other.id, world.org_a), (b_monitor.id, world.org_b)]
    async with database.session() as session:
        assert await monitors_in_maintenance(session, pairs, at("2025-06-20T01:59")) == set()
        assert await monitors_in_maintenance(session, pairs, at("2025-06-20T02:00")) == {own.id}
        assert await monitors_in_maintenance(session, pairs, at("2025-06-20T03:30")) == {own.id, b_monitor.id}
        assert await monitors_in_maintenance(session, pairs, at("2025-06-20T04:00")) == {b_monitor.id}
        assert await monitors_in_maintenance(session, [], at("2025-06-20T03:30")) == set()


async def test_monitors_in_maintenance_expands_recurring_windows(database: Database, world: World) -> None:
    monitor = await insert_monitor(database, world.org_a)
    await add_window(
        database, world.org_a, None, "2025-10-01", "2025-11-01",
        recurrence="30 2 * * *", duration_minutes=60, timezone="Europe/Paris",
    )  # fmt: skip
    pairs = [(monitor.id, world.org_a)]
    async with database.session() as session:
        assert await monitors_in_maintenance(session, pairs, at("2025-10-25T00:45")) == {monitor.id}
        assert await monitors_in_maintenance(session, pairs, at("2025-10-25T01:45")) == set()
        assert await monitors_in_maintenance(session, pairs, at("2025-10-27T01:45")) == {monitor.id}
        assert await monitors_in_maintenance(session, pairs, at("2025-10-27T00:45")) == set()


async def test_maintenance_intervals_merge_clip_and_ignore_disabled(database: Database, world: World) -> None:
    mine = await insert_monitor(database, world.org_a)
    bare = await insert_monitor(database, world.org_a)
    b_monitor = await insert_monitor(database, world.org_b)
    await add_window(database, world.org_a, mine.id, "2025-06-01T10:00", "2025-06-01T12:00")
    await add_window(database, world.org_a, None, "2025-06-01T11:00", "2025-06-01T13:00")  # overlaps
    await add_window(database, world.org_a, None, "2025-06-01T13:00", "2025-06-01T14:00")  # touches
    await add_window(database, world.org_a, mine.id, "2025-06-01T20:00", "2025-06-02T02:00")  # clipped
    await add_window(database, world.org_a, None, "2025-06-01T05:00", "2025-06-01T06:00", is_active=False)
    await add_window(database, world.org_b, None, "2025-06-01T00:00", "2025-06-02T00:00")
    await add_window(database, world.org_b, b_monitor.id, "2025-06-01T00:00", "2025-06-02T00:00")
    async with database.session() as session:
        found = await maintenance_intervals(
            session, world.org_a, [mine.id, bare.id], at("2025-06-01"), at("2025-06-02")
        )
        b_found = await maintenance_intervals(
            session, world.org_b, [b_monitor.id], at("2025-06-01"), at("2025-06-01T01:00")
        )
    assert found == {
        mine.id: [
            (at("2025-06-01T10:00"), at("2025-06-01T14:00")),
            (at("2025-06-01T20:00"), at("2025-06-02")),
        ],
        bare.id: [(at("2025-06-01T11:00"), at("2025-06-01T14:00"))],
    }  # org B's windows reach none of org A's monitors
    assert b_found == {b_monitor.id: [(at("2025-06-01"), at("2025-06-01T01:00"))]}


async def test_maintenance_intervals_of_a_recurring_window_over_400_days(
    database: Database, world: World
) -> None:
    monitor = await insert_monitor(database, world.org_a)
    await add_window(
        database, world.org_a, monitor.id, "2020-01-01", "2030-01-01",
        recurrence="0 3 * * 0", duration_minutes=90, timezone="Europe/Paris",
    )  # fmt: skip
    await add_window(
        database, world.org_a, None, "2020-01-01", "2030-01-01",
        recurrence="0 * * * *", duration_minutes=15, timezone="UTC",
    )  # fmt: skip
    start, end = at("2025-01-01"), at("2025-01-01") + timedelta(days=400)
    began = time.perf_counter()
    async with database.session() as session:
        found = (await maintenance_intervals(session, world.org_a, [monitor.id], start, end))[monitor.id]
    assert time.perf_counter() - began < 3
    assert all(lo < hi for lo, hi in found)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(found))  # sorted, disjoint
    # Sunday 03:00 Paris (01:00Z or 02:00Z) for 90 min, merged with the hourly quarter hours around it.
    assert (at("2025-01-05T02:00"), at("2025-01-05T03:30")) in found  # winter: 03:00 CET = 02:00Z
    assert (at("2025-06-01T01:00"), at("2025-06-01T02:30")) in found  # summer: 03:00 CEST = 01:00Z
    total = sum((hi - lo for lo, hi in found), timedelta())
    sundays = 57
    assert total == timedelta(minutes=15) * (400 * 24 - sundays * 2) + timedelta(minutes=90) * sundays
