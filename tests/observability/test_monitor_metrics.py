"""Per-monitor probe series read at scrape time: each active monitor's latest result per region,
labelled by monitor id, name and region, capped at TRAXO_METRICS_MONITOR_LIMIT with the rest
counted; and the other figures read from the database (agents, assignments, outbox, queue)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from control_plane.core.ids import new_id
from control_plane.db import Database
from control_plane.domain.incident_rules import HEARTBEAT_REGION
from control_plane.models import Agent, AgentToken, AssignmentGrant, Monitor
from control_plane.observability.database import read_database_state
from control_plane.observability.exposition import render
from tests.factories import insert_monitor, record, result
from tests.observability.support import app_with, client_of, samples


@pytest.fixture
async def monitors(database, world, clock):
    """Monitors with results: `shop` UP in two regions (then DOWN in eu-west-1), `api` DOWN in one,
    `beat` a heartbeat (its pings' results come from the "heartbeat" region), `paused` paused (its
    results stay out)."""
    org = world.org_a
    now = clock()
    shop = await insert_monitor(database, org, name='Shop "EU" \\ main', regions=["us-east-1", "eu-west-1"])
    api = await insert_monitor(database, org, name="API", regions=["us-east-1"])
    paused = await insert_monitor(database, org, name="Paused", regions=["us-east-1"], is_active=False)
    beat = await insert_monitor(database, org, name="Nightly backup", type="HEARTBEAT", url=None)
    earlier = now - timedelta(seconds=30)
    await record(
        database,
        [
            result(shop.id, earlier, region="us-east-1", response_time=120.0),
            result(shop.id, earlier, region="eu-west-1", response_time=80.0),
            result(shop.id, now, region="eu-west-1", status="DOWN", response_time=None),
            result(api.id, now, status="DOWN", response_time=3000.0),
            result(paused.id, now),
            result(beat.id, now, region=HEARTBEAT_REGION, response_time=None),
        ],
    )
    return shop, api, paused, beat


def labels(monitor: Monitor, region: str) -> str:
    name = monitor.name.replace("\\", "\\\\").replace('"', '\\"')  # as the text format escapes them
    return f'{{monitor_id="{monitor.id}",name="{name}",region="{region}"}}'


async def test_it_shows_each_active_monitor_latest_result_per_region(runtime, monitors):
    shop, api, paused, beat = monitors
    async with client_of(app_with(runtime)) as http:
        exposition = (await http.get("/metrics")).text
    found = samples(exposition)
    assert found[f"traxo_monitor_up{labels(shop, 'us-east-1')}"] == 1.0
    assert found[f"traxo_monitor_up{labels(shop, 'eu-west-1')}"] == 0.0  # its newest result
    assert found[f"traxo_monitor_up{labels(api, 'us-east-1')}"] == 0.0
    assert found[f"traxo_monitor_response_seconds{labels(shop, 'us-east-1')}"] == pytest.approx(0.12)
    assert found[f"traxo_monitor_response_seconds{labels(api, 'us-east-1')}"] == pytest.approx(3.0)
    assert f"traxo_monitor_response_seconds{labels(shop, 'eu-west-1')}" not in found  # none measured
    checked = found[f"traxo_monitor_last_check_timestamp_seconds{labels(api, 'us-east-1')}"]
    assert abs(checked - runtime.clock().timestamp()) < 60
    assert found[f"traxo_monitor_up{labels(beat, HEARTBEAT_REGION)}"] == 1.0
    assert paused.id not in exposition
    assert found["traxo_monitor_series_dropped"] == 0.0


async def test_it_caps_the_series_and_says_how_many_were_dropped(runtime, monitors):
    state = await read_database_state(
        runtime.db, runtime.settings.model_copy(update={"metrics_monitor_limit": 2}), runtime.clock()
    )
    assert state.error is None
    assert len(state.probes) == 2 and state.probes_dropped == 2  # of four active (monitor, region) pairs
    async with client_of(app_with(runtime, metrics_monitor_limit=2)) as http:
        found = samples((await http.get("/metrics")).text)
    assert sum(1 for key in found if key.startswith("traxo_monitor_up{")) == 2
    assert found["traxo_monitor_series_dropped"] == 2.0
    none = await read_database_state(
        runtime.db, runtime.settings.model_copy(update={"metrics_monitor_limit": 0}), runtime.clock()
    )
    assert none.probes == [] and none.probes_dropped == 0


async def test_a_region_the_monitor_left_has_no_series(runtime, database, monitors):
    shop, *_ = monitors
    async with database.session() as session:
        await session.execute(update(Monitor).where(Monitor.id == shop.id).values(regions=["us-east-1"]))
        await session.commit()
    state = await read_database_state(runtime.db, runtime.settings, runtime.clock())
    assert {(probe.monitor_id, probe.region) for probe in state.probes if probe.monitor_id == shop.id} == {
        (shop.id, "us-east-1")
    }


async def test_it_counts_agents_holding_a_lease_and_their_assignments_by_region(
    runtime, database, monitors, clock
):
    shop, api, *_ = monitors
    now = clock()
    lapsed_renewal = now - timedelta(seconds=runtime.settings.agent_lease_seconds * 10)
    async with database.session() as session:
        token = AgentToken(
            id=new_id("atk"), region="eu-west-1", token_hash=new_id("h"), prefix="p", last4="abcd"
        )
        session.add(token)
        await session.flush()
        for name, renewed in (("live", now), ("silent", lapsed_renewal)):
            agent = Agent(id=new_id("agt"), token_id=token.id, member_key=f"{token.id}/{name}", name=name)
            agent.region, agent.version, agent.capabilities = "eu-west-1", "1", []
            agent.registered_at = agent.renewed_at = renewed
            session.add(agent)
        for monitor in (shop, api):
            session.add(
                AssignmentGrant(
                    monitor_id=monitor.id,
                    region="eu-west-1",
                    epoch=1,
                    member_key=f"{token.id}/live",
                    granted_at=now,
                )
            )
        await session.commit()
    state = await read_database_state(runtime.db, runtime.settings, now)
    assert state.agents_connected == {"eu-west-1": 1}
    assert state.assignments == {"eu-west-1": 2}
    assert state.incident_queue == 0 and state.deliveries_pending == 0


async def test_a_scrape_whose_database_reads_fail_still_answers_the_process_figures(
    settings, tmp_path, clock
):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing-directory' / 'traxo.db'}")
    try:
        state = await read_database_state(db, settings, clock())
    finally:
        await db.dispose()
    assert state.error is not None and "unable to open database file" in state.error
    found = samples(render(state, clock()).decode())
    assert found["traxo_database_up"] == 0.0
    assert "traxo_monitor_series_dropped" not in found and "traxo_agents_connected" not in str(found)
    assert "process_cpu_seconds_total" in found  # the process's own figures are still there
