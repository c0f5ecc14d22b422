"""The engine's core rule: consecutive failures per region, a quorum of regions, recovery; each
result evaluated once, in the order it was checked; nothing lost when evaluation fails."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from control_plane.incidents import IncidentEngine
from control_plane.models import IncidentBacklog
from control_plane.results import ResultsIngest, results_store
from tests.incidents.support import (
    T0,
    events_of,
    feed,
    http_monitor,
    incidents_of,
    results_for,
    state_of,
    timeline_of,
)


async def test_two_failures_open_an_incident_with_the_checks_words_and_a_success_resolves_it(database, world):
    monitor = await http_monitor(database, world.org_a)
    await feed(database, results_for(monitor.id, "UD"))
    assert await incidents_of(database, monitor.id) == []  # one failure is not an outage

    await feed(database, results_for(monitor.id, "D", start=T0 + timedelta(minutes=2)))
    [incident] = await incidents_of(database, monitor.id)
    assert incident.kind == "DOWN"
    assert incident.resolved_at is None
    assert incident.cause == "Expected status 200, got 503"
    assert incident.regions == ["us-east-1"]
    assert incident.started_at == T0 + timedelta(minutes=1)  # the first failure of the run
    assert (await state_of(database, monitor.id)).down is True

    await feed(database, results_for(monitor.id, "DU", start=T0 + timedelta(minutes=3)))
    [incident] = await incidents_of(database, monitor.id)
    assert incident.resolved_at == T0 + timedelta(minutes=4)
    assert incident.status == "resolved"
    assert [e.type for e in await events_of(database, monitor.id)] == ["incident.opened", "incident.resolved"]
    resolved = (await events_of(database, monitor.id))[1]
    assert resolved.payload["duration"] == 180
    assert resolved.payload["monitorName"] == monitor.name
    timeline = await timeline_of(database, incident.id)
    assert [(t.kind, t.status) for t in timeline] == [("system", "investigating"), ("system", "resolved")]
    assert timeline[1].message == "Recovered after 3 minutes"


async def test_confirmations_and_recoveries_come_from_the_config(database, world):
    monitor = await http_monitor(database, world.org_a, config={"confirmations": 3, "recoveries": 2})
    await feed(database, results_for(monitor.id, "DD"))
    assert await incidents_of(database, monitor.id) == []
    await feed(database, results_for(monitor.id, "DU", start=T0 + timedelta(minutes=2)))
    [incident] = await incidents_of(database, monitor.id)
    assert incident.resolved_at is None  # one success of the two needed
    await feed(database, results_for(monitor.id, "U", start=T0 + timedelta(minutes=4)))
    [incident] = await incidents_of(database, monitor.id)
    assert incident.resolved_at == T0 + timedelta(minutes=4)


async def test_a_monitor_is_down_when_a_majority_of_its_regions_fail(database, world):
    regions = ["us-east-1", "eu-west-1", "ap-south-1"]
    monitor = await http_monitor(database, world.org_a, regions=regions)
    await feed(database, results_for(monitor.id, "DDD", region="us-east-1"))
    await feed(database, results_for(monitor.id, "UUU", region="ap-south-1"))
    assert await incidents_of(database, monitor.id) == []  # 1 of 3 failing
    await feed(database, results_for(monitor.id, "DD", region="eu-west-1", error="Connection timeout"))
    [incident] = await incidents_of(database, monitor.id)
    assert incident.regions == ["eu-west-1", "us-east-1"]
    assert incident.cause in ("Connection timeout", "Expected status 200, got 503")
    # us-east-1 recovers: 1 of 3 failing is below the quorum of 2
    await feed(database, results_for(monitor.id, "U", region="us-east-1", start=T0 + timedelta(minutes=5)))
    [incident] = await incidents_of(database, monitor.id)
    assert incident.resolved_at == T0 + timedelta(minutes=5)


async def test_region_quorum_overrides_the_majority(database, world):
    monitor = await http_monitor(
        database, world.org_a, regions=["us-east-1", "eu-west-1", "ap-south-1"], config={"regionQuorum": 1}
    )
    await feed(database, results_for(monitor.id, "DD", region="ap-south-1"))
    [incident] = await incidents_of(database, monitor.id)
    assert incident.regions == ["ap-south-1"]


async def test_a_late_result_older_than_the_newest_never_flips_the_state(database, world):
    monitor = await http_monitor(database, world.org_a)
    await feed(database, results_for(monitor.id, "U", start=T0 + timedelta(minutes=10)))
    # A spool replayed after an outage: two failures from before the newest success.
    await feed(database, results_for(monitor.id, "DD", start=T0))
    assert await incidents_of(database, monitor.id) == []
    assert (await state_of(database, monitor.id)).down is False


async def test_one_batch_counts_in_the_order_checked_not_the_order_sent(database, world):
    monitor = await http_monitor(database, world.org_a)
    batch = results_for(monitor.id, "DDU")  # down, down, then up: an incident opened and resolved
    await feed_one_batch(database, list(reversed(batch)))
    [incident] = await incidents_of(database, monitor.id)
    assert incident.started_at == T0
    assert incident.resolved_at == T0 + timedelta(minutes=2)


async def feed_one_batch(database, batch):
    from tests.factories import record

    await record(database, batch)


async def test_a_paused_monitor_opens_nothing(database, world):
    monitor = await http_monitor(database, world.org_a, is_active=False)
    await feed(database, results_for(monitor.id, "DDDD"))
    assert await incidents_of(database, monitor.id) == []


async def test_each_result_is_evaluated_once_and_a_failed_evaluation_is_swept_later(database, world):
    monitor = await http_monitor(database, world.org_a)
    batch = results_for(monitor.id, "DD")
    # Stored without the after-commit evaluation: as if the process died right after the commit.
    async with database.session() as session:
        await ResultsIngest(results_store(session)).record(session, batch)
    assert await _queued(database, [r.id for r in batch]) == 2
    assert await incidents_of(database, monitor.id) == []

    engine = IncidentEngine()
    async with database.session() as session:  # too fresh: left to its own writer
        swept = await engine.evaluate_queued(session, limit=2000, queued_before=T0.replace(year=2000))
    assert swept.results == 0
    async with database.session() as session:
        swept = await engine.evaluate_queued(session, limit=2000, queued_before=T0.replace(year=2100))
    assert swept.results >= 2
    assert await _queued(database, [r.id for r in batch]) == 0
    [incident] = await incidents_of(database, monitor.id)
    assert incident.resolved_at is None

    # Evaluating the same results again finds nothing queued: no second count.
    async with database.session() as session:
        again = await engine.evaluate_results(session, [r.id for r in batch])
    assert again.results == 0
    assert len(await events_of(database, monitor.id)) == 1


async def test_a_replayed_batch_is_not_counted_twice(database, world):
    monitor = await http_monitor(database, world.org_a)
    [first] = results_for(monitor.id, "D")
    await feed(database, [first, first])  # the agent resent it: the store skips the duplicate
    assert await incidents_of(database, monitor.id) == []
    await feed(database, results_for(monitor.id, "D", start=T0 + timedelta(minutes=1)))
    assert len(await incidents_of(database, monitor.id)) == 1


async def _queued(database, ids):
    async with database.session() as session:
        return await session.scalar(
            select(func.count()).select_from(IncidentBacklog).where(IncidentBacklog.result_id.in_(ids))
        )


async def test_the_queue_taken_in_chunks_counts_every_result_steady_runs_included(database, world):
    """What the background evaluator does (on PostgreSQL, plain successes fold in SQL)."""
    from control_plane.models import RegionState

    monitor = await http_monitor(database, world.org_a)
    engine = IncidentEngine()

    async def store_then_evaluate(pattern: str, minute: int) -> int:
        async with database.session() as session:  # stored without the inline evaluation
            batch = results_for(monitor.id, pattern, start=T0 + timedelta(minutes=minute))
            await ResultsIngest(results_store(session)).record(session, batch)
        async with database.session() as session:
            return (await engine.evaluate_queued(session, limit=5000)).results

    assert await store_then_evaluate("UUU", 0) >= 3  # the region's first results: its row is made
    assert await store_then_evaluate("UU", 3) >= 2  # a steady run
    async with database.session() as session:
        state = await session.get(RegionState, (monitor.id, "us-east-1"))
        assert (state.consecutive_successes, state.newest_at) == (5, T0 + timedelta(minutes=4))
    await store_then_evaluate("D", 5)
    assert await incidents_of(database, monitor.id) == []
    await store_then_evaluate("D", 6)
    [incident] = await incidents_of(database, monitor.id)
    assert incident.started_at == T0 + timedelta(minutes=5)
    await store_then_evaluate("U", 7)
    [incident] = await incidents_of(database, monitor.id)
    assert incident.resolved_at == T0 + timedelta(minutes=7)
    # A late success older than the newest is not folded in: the counters stay.
    await store_then_evaluate("U", 1)
    async with database.session() as session:
        state = await session.get(RegionState, (monitor.id, "us-east-1"))
        assert (state.consecutive_successes, state.newest_at) == (1, T0 + timedelta(minutes=7))
