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

import pytest

from control_plane.incidents.states import lock_monitor_states, take_queued
from control_plane.incidents.sweep import open_no_data
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
