"""Lock order on PostgreSQL: whatever judges a monitor holds its monitor_states row before it
writes the monitor's region rows, each set taken in id order, so the incident queue and the
NO_DATA sweep (or two replicas' queues) wait for each other instead of deadlocking.

Found under load (bench/status_page.py, 5,000 results/s): the queue's SQL fold of plain successes
updated region rows before the queue took its monitors' locks, while the sweep held those locks and
waited for the same region rows. PostgreSQL broke the cycle after a second, failing one of them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.incidents.states import lock_monitor_states, take_queued
from control_plane.incidents.sweep import open_no_data
from control_plane.models import MonitorState
from control_plane.results.ingest import record_results
from tests.incidents.support import T0, feed, http_monitor, results_for

pytestmark = pytest.mark.postgres_only

REGIONS = ["us-east-1", "eu-west-1"]


async def test_the_queue_and_the_no_data_sweep_wait_for_each_other_instead_of_deadlocking(
    own_database, own_org
):
    db = own_database
    created = T0 - timedelta(hours=1)
    steady = await http_monitor(
        db, own_org, name="steady", regions=REGIONS, created_at=created, updated_at=created
    )
    failing = await http_monitor(
        db, own_org, name="failing", regions=REGIONS, created_at=created, updated_at=created
    )
    for monitor in (steady, failing):  # both regions have a state row, newest at T0
        for region in REGIONS:
            await feed(db, results_for(monitor.id, "U", region=region, start=T0))
    later = T0 + timedelta(minutes=4)
    async with db.session() as session:  # queued for the queue job, as agents' batches are
        queued = [
            *results_for(steady.id, "U", region="eu-west-1", start=later),  # folded in SQL
            *results_for(failing.id, "D", region="us-east-1", start=later),  # judged in Python
        ]
        await record_results(session, queued, defer_incidents=True)

    async with db.session() as queue, db.session() as sweeper:
        # The queue job's transaction, step by step as the engine takes it: unqueue (folding the
        # plain success into its region row), then lock the monitors it judges in Python.
        left, folded = await take_queued(queue, limit=100)
        assert folded == 1 and [o.monitor_id for o in left] == [failing.id]
        # Meanwhile the sweep finds every region silent since T0 (the queue has not committed).
        sweep = asyncio.create_task(open_no_data(sweeper, now=later + timedelta(seconds=30)))
        await asyncio.sleep(0.5)  # it reaches the locks the queue holds, and waits there
        await lock_monitor_states(queue, {failing.id: own_org})
        await queue.commit()
        opened = await asyncio.wait_for(sweep, 30)  # neither failed with a deadlock

    # The sweep judged under the locks, after the queue's commit: steady's eu-west-1 has news
    # now, so steady opens a NO_DATA incident for us-east-1 alone, failing for eu-west-1.
    assert opened == 2


async def test_states_created_by_another_transaction_meanwhile_are_locked_in_order(own_database, own_org):
    # Found under load (bench/agents_at_scale.py, monitors without a state row yet): the sweep
    # locked the states that existed, then inserted the missing ones and locked those, while the
    # queue had created one of them meanwhile, held it, and waited for a row the sweep held.
    db = own_database
    first = await http_monitor(db, own_org, name="first")
    second = await http_monitor(db, own_org, name="second")
    low, high = sorted((first.id, second.id))
    async with db.session() as session:
        await lock_monitor_states(session, {high: own_org})  # high has a state row, low has none
        await session.commit()

    async with db.session() as sweeper, db.session() as queue:
        other: asyncio.Task[None] | None = None
        execute = sweeper.execute

        async def execute_after_the_queue(statement: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal other
            if other is None and isinstance(statement, Insert) and statement.table.name == "monitor_states":
                # Just before the sweeper creates low's state, the queue does, holds it, and goes
                # for high, as its own id order has it.
                await lock_monitor_states(queue, {low: own_org})
                other = asyncio.create_task(held_then_high(queue))
                await asyncio.sleep(0.5)
            return await execute(statement, *args, **kwargs)

        async def held_then_high(session: AsyncSession) -> None:
            await session.execute(
                select(MonitorState).where(MonitorState.monitor_id == high).with_for_update()
            )
            await session.commit()

        sweeper.execute = execute_after_the_queue  # type: ignore[method-assign]
        locked = await asyncio.wait_for(lock_monitor_states(sweeper, {low: own_org, high: own_org}), 30)
        await sweeper.commit()
        assert other is not None
        await asyncio.wait_for(other, 30)  # neither failed with a deadlock
    assert set(locked) == {low, high}
