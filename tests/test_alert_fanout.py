"""Fan-out from the outbox: which channels get a delivery for which event (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from control_plane.alerts.outbox import release_held
from control_plane.core.ids import new_id
from control_plane.db import Database
from control_plane.models import IncidentEvent
from tests.alert_delivery_support import (
    deliveries,
    dispatch,
    events,
    incident,
    insert_channel,
    open_down,
    resolve,
)
from tests.conftest import World
from tests.factories import insert_monitor
from tests.incident_factories import insert_window

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def test_an_opened_incident_goes_to_every_active_channel_of_its_organization(
    database: Database, world: World
) -> None:
    first = await insert_channel(database, world.org_a, created_at=T0)
    second = await insert_channel(database, world.org_a, type="SLACK", created_at=T0 + timedelta(seconds=1))
    await insert_channel(database, world.org_a, is_active=False, created_at=T0)
    await insert_channel(database, world.org_b, created_at=T0)  # another organization's
    monitor = await insert_monitor(database, world.org_a)
    incident_id = await open_down(database, monitor, T0)

    assert await dispatch(database, T0 + timedelta(seconds=2)) == 1

    rows = await deliveries(database)
    assert sorted(row.channel_id for row in rows) == sorted([first.id, second.id])
    [event] = await events(database)
    assert event.dispatched_at == T0 + timedelta(seconds=2)
    for row in rows:
        assert (row.event_id, row.idempotency_key, row.kind) == (event.id, event.id, "incident.opened")
        assert (row.incident_id, row.org_id, row.status, row.attempts) == (
            incident_id,
            world.org_a,
            "pending",
            0,
        )
        assert row.next_attempt_at == T0 + timedelta(seconds=2)
        assert row.give_up_at == T0 + timedelta(seconds=2, hours=24)
        assert row.id.startswith("dlv_")
    assert (await incident(database, incident_id)).alerted_at == T0 + timedelta(seconds=2)
    assert await dispatch(database, T0 + timedelta(seconds=3)) == 0  # nothing left


async def test_alert_channel_ids_choose_among_the_existing_active_channels_of_the_organization(
    database: Database, world: World
) -> None:
    chosen = await insert_channel(database, world.org_a, created_at=T0)
    await insert_channel(database, world.org_a, created_at=T0)  # not chosen
    disabled = await insert_channel(database, world.org_a, is_active=False, created_at=T0)
    foreign = await insert_channel(database, world.org_b, created_at=T0)
    monitor = await insert_monitor(
        database, world.org_a, alert_channel_ids=[chosen.id, disabled.id, foreign.id, "ac_gone"]
    )
    await open_down(database, monitor, T0)
    await dispatch(database, T0)
    assert [row.channel_id for row in await deliveries(database)] == [chosen.id]


async def test_no_channel_chosen_still_marks_the_incident_alerted(database: Database, world: World) -> None:
    await insert_channel(database, world.org_a, created_at=T0)
    monitor = await insert_monitor(database, world.org_a, alert_channel_ids=[])
    incident_id = await open_down(database, monitor, T0)
    await dispatch(database, T0)
    assert await deliveries(database) == []
    assert (await incident(database, incident_id)).alerted_at == T0
    # ... so its recovery is delivered to its (no) channels too, not skipped as never heard of.
    await resolve(database, monitor, incident_id, T0 + timedelta(minutes=5))
    assert await dispatch(database, T0 + timedelta(minutes=5)) == 1
    assert await deliveries(database) == []


async def test_a_resolve_goes_to_the_same_channels_after_its_open(database: Database, world: World) -> None:
    channel = await insert_channel(database, world.org_a, created_at=T0)
    monitor = await insert_monitor(database, world.org_a)
    incident_id = await open_down(database, monitor, T0)
    await resolve(database, monitor, incident_id, T0 + timedelta(minutes=3))
    # Both in one batch: the open marks it alerted before the resolve is judged.
    assert await dispatch(database, T0 + timedelta(minutes=4)) == 2
    rows = await deliveries(database)
    assert sorted(row.kind for row in rows) == ["incident.opened", "incident.resolved"]
    assert {row.channel_id for row in rows} == {channel.id}


async def test_a_suppressed_incident_is_recorded_dispatched_and_never_delivered(
    database: Database, world: World
) -> None:
    await insert_channel(database, world.org_a, created_at=T0)
    upstream = await insert_monitor(database, world.org_a, name="Upstream")
    monitor = await insert_monitor(database, world.org_a)
    incident_id = await open_down(database, monitor, T0, suppressed_by=upstream.id)
    await resolve(database, monitor, incident_id, T0 + timedelta(minutes=2))
    assert await dispatch(database, T0 + timedelta(minutes=2)) == 2
    assert await deliveries(database) == []
    assert all(event.dispatched_at is not None for event in await events(database))
    assert (await incident(database, incident_id)).alerted_at is None
    async with database.session() as session:
        assert await release_held(session, now=T0 + timedelta(hours=1)) == 0


async def test_maintenance_holds_an_incident_back_until_its_window_ends_while_still_open(
    database: Database, world: World
) -> None:
    channel = await insert_channel(database, world.org_a, created_at=T0)
    monitor = await insert_monitor(database, world.org_a)
    window_end = T0 + timedelta(hours=1)
    await insert_window(database, world.org_a, T0 - timedelta(minutes=5), window_end, monitor_id=monitor.id)
    incident_id = await open_down(database, monitor, T0, in_maintenance=True)
    await dispatch(database, T0)
    assert await deliveries(database) == []
    async with database.session() as session:  # the window still runs: still held
        assert await release_held(session, now=window_end - timedelta(seconds=1)) == 0

    async with database.session() as session:
        assert await release_held(session, now=window_end) == 1
    async with database.session() as session:  # its new event is waiting: not released twice
        assert await release_held(session, now=window_end + timedelta(seconds=1)) == 0
    released = (await events(database))[-1]
    assert (released.type, released.in_maintenance, released.dispatched_at) == (
        "incident.opened",
        False,
        None,
    )
    assert released.payload["incidentId"] == incident_id
    assert released.payload["monitorName"] == monitor.name
    assert released.payload["maintenanceEnded"] is True

    await dispatch(database, window_end + timedelta(seconds=1))
    [row] = await deliveries(database)
    assert (row.channel_id, row.event_id, row.kind) == (channel.id, released.id, "incident.opened")
    assert (await incident(database, incident_id)).alerted_at == window_end + timedelta(seconds=1)
    async with database.session() as session:  # alerted now: never again
        assert await release_held(session, now=window_end + timedelta(hours=1)) == 0


async def test_an_incident_resolved_inside_its_maintenance_window_is_never_delivered(
    database: Database, world: World
) -> None:
    await insert_channel(database, world.org_a, created_at=T0)
    monitor = await insert_monitor(database, world.org_a)
    await insert_window(database, world.org_a, T0 - timedelta(minutes=5), T0 + timedelta(hours=1))
    incident_id = await open_down(database, monitor, T0, in_maintenance=True)
    await resolve(database, monitor, incident_id, T0 + timedelta(minutes=10))  # resolved out of it
    await dispatch(database, T0 + timedelta(minutes=10))
    async with database.session() as session:
        assert await release_held(session, now=T0 + timedelta(hours=2)) == 0
    await dispatch(database, T0 + timedelta(hours=2))
    assert await deliveries(database) == []  # nobody heard of it, not even its recovery


async def test_fanning_out_twice_delivers_once(database: Database, world: World) -> None:
    await insert_channel(database, world.org_a, created_at=T0)
    await insert_channel(database, world.org_a, created_at=T0)
    monitor = await insert_monitor(database, world.org_a)
    incident_id = await open_down(database, monitor, T0)
    await resolve(database, monitor, incident_id, T0 + timedelta(minutes=1))
    await dispatch(database, T0 + timedelta(minutes=1))
    await dispatch(database, T0 + timedelta(minutes=2))
    assert len(await deliveries(database)) == 4

    # Even events marked undispatched again are not fanned out twice: the unique key keeps one.
    async with database.session() as session:
        await session.execute(update(IncidentEvent).values(dispatched_at=None))
        await session.commit()
    assert await dispatch(database, T0 + timedelta(minutes=3)) == 2
    rows = await deliveries(database)
    assert len(rows) == 4
    assert len({(row.event_id, row.channel_id) for row in rows}) == 4
    assert all(event.dispatched_at == T0 + timedelta(minutes=3) for event in await events(database))


async def test_a_second_opened_event_for_an_alerted_incident_sends_nothing(
    database: Database, world: World
) -> None:
    await insert_channel(database, world.org_a, created_at=T0)
    monitor = await insert_monitor(database, world.org_a)
    incident_id = await open_down(database, monitor, T0)
    [first] = await events(database)
    # Two replicas releasing it from maintenance at once would each write an "opened".
    async with database.session() as session:
        session.add(
            IncidentEvent(
                id=new_id("iev"),
                org_id=first.org_id,
                monitor_id=first.monitor_id,
                incident_id=incident_id,
                type="incident.opened",
                occurred_at=T0 + timedelta(seconds=1),
                payload=first.payload,
            )
        )
        await session.commit()
    assert await dispatch(database, T0 + timedelta(seconds=2)) == 2
    [row] = await deliveries(database)
    assert row.event_id == first.id
    assert (await incident(database, incident_id)).alerted_at == T0 + timedelta(seconds=2)
