"""The engine's sweep, with the clock passed in: regions gone silent, flapping incidents closing
once stable. Each test has a database of its own (the sweep judges every monitor in it)."""

from __future__ import annotations

from datetime import timedelta

from control_plane.core.ids import new_id
from control_plane.core.timefmt import utcnow
from control_plane.incidents import IncidentEngine
from control_plane.incidents.sweep import close_stable_flapping, open_no_data, silent_regions, sweep
from control_plane.models import Agent, AgentToken, Monitor
from tests.incidents.support import T0, events_of, feed, http_monitor, incidents_of, results_for


async def test_a_region_with_no_checks_for_three_intervals_opens_one_incident_that_results_resolve(
    own_database, own_org
):
    db = own_database
    created = T0 - timedelta(hours=1)
    monitor = await http_monitor(
        db, own_org, regions=["us-east-1", "eu-west-1"], created_at=created, updated_at=created
    )
    await feed(db, results_for(monitor.id, "U", region="us-east-1", start=T0))
    await feed(db, results_for(monitor.id, "U", region="eu-west-1", start=T0))

    async with db.session() as session:  # 2 intervals of silence: not yet
        assert await open_no_data(session, now=T0 + timedelta(minutes=2, seconds=59)) == 0
    await feed(db, results_for(monitor.id, "U", region="us-east-1", start=T0 + timedelta(minutes=3)))
    async with db.session() as session:
        assert await open_no_data(session, now=T0 + timedelta(minutes=3, seconds=1)) == 1
    [incident] = await incidents_of(db, monitor.id)
    assert incident.kind == "NO_DATA"
    assert incident.regions == ["eu-west-1"]
    assert incident.cause == "No checks from eu-west-1 for 3 minutes: no agent is serving the region"
    async with db.session() as session:  # once, not on every pass
        assert await open_no_data(session, now=T0 + timedelta(minutes=5)) == 0
    assert len(await incidents_of(db, monitor.id)) == 1

    await feed(db, results_for(monitor.id, "U", region="eu-west-1", start=T0 + timedelta(minutes=5)))
    [incident] = await incidents_of(db, monitor.id)
    assert incident.resolved_at == T0 + timedelta(minutes=5)
    assert incident.regions == ["eu-west-1"]
    assert [e.type for e in await events_of(db, monitor.id)] == ["incident.opened", "incident.resolved"]


async def test_the_cause_says_when_agents_serve_the_region_but_stopped_sending(own_database, own_org):
    db = own_database
    created = T0 - timedelta(hours=1)
    monitor = await http_monitor(db, own_org, created_at=created, updated_at=created)
    async with db.session() as session:
        session.add(
            AgentToken(
                id="tok_x",
                region="us-east-1",
                org_id=None,
                token_hash="x" * 64,
                prefix="traxo_agt",
                last4="xxxx",
            )
        )
        await session.flush()
        session.add(
            Agent(
                id=new_id("agt"),
                token_id="tok_x",
                name="east-1",
                member_key="tok_x:east-1",
                region="us-east-1",
                version="1",
                capabilities=[],
                registered_at=created,
                renewed_at=utcnow(),
                incarnation=1,
            )
        )
        await session.commit()
    async with db.session() as session:
        assert await open_no_data(session, now=T0) == 1
    [incident] = await incidents_of(db, monitor.id)
    assert incident.cause == "No checks from us-east-1 for 3 minutes: its agents have stopped sending results"


async def test_paused_and_passive_monitors_are_never_silent(own_database, own_org):
    db = own_database
    created = T0 - timedelta(hours=1)
    await http_monitor(db, own_org, is_active=False, created_at=created, updated_at=created)
    await http_monitor(db, own_org, type="HEARTBEAT", url=None, created_at=created, updated_at=created)
    async with db.session() as session:
        assert await open_no_data(session, now=T0) == 0


async def test_a_flapping_incident_closes_once_the_monitor_is_stable_for_the_window(own_database, own_org):
    db = own_database
    monitor = await http_monitor(db, own_org, config={"confirmations": 1, "flapThreshold": 1})
    await feed(db, results_for(monitor.id, "DUDU"))  # the second down makes it flapping
    incidents = await incidents_of(db, monitor.id)
    assert incidents[-1].flapping and incidents[-1].resolved_at is None
    last_up = T0 + timedelta(minutes=3)
    async with db.session() as session:
        assert await close_stable_flapping(session, now=last_up + timedelta(minutes=29)) == 0
    async with db.session() as session:
        assert await close_stable_flapping(session, now=last_up + timedelta(minutes=31)) == 1
    closed = (await incidents_of(db, monitor.id))[-1]
    assert closed.resolved_at == last_up  # the downtime ended when it last came back


async def test_the_sweep_evaluates_what_a_crashed_writer_left_queued(own_database, own_org):
    from control_plane.results import ResultsIngest, results_store

    db = own_database
    monitor = await http_monitor(db, own_org)
    async with db.session() as session:  # stored, never evaluated
        await ResultsIngest(results_store(session)).record(session, results_for(monitor.id, "DDD"))
    async with db.session() as session:
        swept = await sweep(session, IncidentEngine(), now=utcnow() + timedelta(minutes=1))
    assert swept.leftovers == 3
    [incident] = await incidents_of(db, monitor.id)
    assert incident.kind == "DOWN"


async def test_silent_regions_are_found_in_sql_per_interval_region_and_change(own_database, own_org):
    """Each monitor is judged by its own interval; a region it never had a result in counts from
    its creation or last change; a state row left of a region it no longer has counts for nothing."""
    db = own_database
    created = T0 - timedelta(hours=1)
    fast = await http_monitor(
        db, own_org, interval=30, regions=["us-east-1"], created_at=created, updated_at=created
    )
    slow = await http_monitor(
        db, own_org, interval=60, regions=["us-east-1"], created_at=created, updated_at=created
    )
    moved = await http_monitor(db, own_org, regions=["us-east-1"], created_at=created, updated_at=created)
    fresh = await http_monitor(db, own_org, regions=["us-east-1"], created_at=T0, updated_at=T0)
    paused = await http_monitor(db, own_org, is_active=False, created_at=created, updated_at=created)
    for monitor in (fast, slow, moved, paused):
        await feed(db, results_for(monitor.id, "U", region="us-east-1", start=T0))
    async with db.session() as session:  # `moved` now runs in eu-west-1 only, changed an hour ago
        changed = await session.get(Monitor, moved.id)
        assert changed is not None
        changed.regions, changed.updated_at = ["eu-west-1"], created
        await session.commit()
    now = T0 + timedelta(seconds=100)  # 3 x 30 s have passed, 3 x 60 s have not

    async with db.session() as session:
        silent = await silent_regions(session, now=now)
        assert await open_no_data(session, now=now) == 2

    assert silent.pop(fast.id) == ["us-east-1"]
    assert silent.pop(moved.id) == ["eu-west-1"]  # never a result there; us-east-1's row is left over
    assert fresh.id not in silent and paused.id not in silent  # created since; not judged
    assert silent == {}  # slow too: within its 3 intervals
    [incident] = await incidents_of(db, moved.id)
    assert incident.regions == ["eu-west-1"]
    assert await incidents_of(db, slow.id) == []
