"""Lock order between the outbox and the incident engine on PostgreSQL: both hold a monitor's
monitor_states row before they write its incidents (taken in id order), so a fan-out marking
incidents alerted waits for the engine instead of deadlocking with it.

Found under load (bench/status_page.py): the fan-out marked "opened" incidents in the events'
order while the engine, holding its monitors, updated the same incidents in its monitors' order.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from control_plane.db import Database
from control_plane.incidents.states import lock_monitor_states
from control_plane.models import Incident
from tests.alert_delivery_support import deliveries, dispatch, incident, insert_channel, open_down
from tests.conftest import World
from tests.factories import insert_monitor

pytestmark = pytest.mark.postgres_only

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def test_the_fan_out_waits_for_the_engine_instead_of_deadlocking(
    database: Database, world: World
) -> None:
    await insert_channel(database, world.org_a, created_at=T0)
    first = await insert_monitor(database, world.org_a, name="first")
    second = await insert_monitor(database, world.org_a, name="second")
    # Opened in this order: the fan-out takes their events (and marks them) first, then second.
    first_incident = await open_down(database, first, T0)
    second_incident = await open_down(database, second, T0 + timedelta(seconds=1))
    monitors = {first.id: world.org_a, second.id: world.org_a}
    async with database.session() as session:  # their state rows, as the engine that opened them left
        await lock_monitor_states(session, monitors)
        await session.commit()

    async with database.session() as engine:
        # The engine's transaction: its monitors locked, then their incidents written, the second
        # monitor's first (its monitors' order need not be the incidents').
        await lock_monitor_states(engine, monitors)
        await _touch(engine, second_incident)
        fan_out = asyncio.create_task(dispatch(database, T0 + timedelta(seconds=2)))
        await asyncio.sleep(0.5)  # the fan-out reaches what the engine holds, and waits there
        await _touch(engine, first_incident)
        await engine.commit()
        assert await asyncio.wait_for(fan_out, 30) == 2  # neither failed with a deadlock

    assert len(await deliveries(database)) == 2
    for incident_id in (first_incident, second_incident):
        assert (await incident(database, incident_id)).alerted_at == T0 + timedelta(seconds=2)


async def _touch(session, incident_id: str) -> None:
    statement = update(Incident).where(Incident.id == incident_id).values(regions=["us-east-1", "eu-west-1"])
    await session.execute(statement.execution_options(synchronize_session=False))
