"""The delivery worker through the real WEBHOOK sender to local receivers: retries with backoff,
permanent failures, giving up, a worker killed mid-send, two workers sharing the outbox, order,
and reminders (both databases unless marked)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook

from control_plane.alerts.job import AlertsLoop, alert_pass
from control_plane.alerts.reminders import remind
from control_plane.alerts.worker import backoff_seconds, deliver_all_due, deliver_due
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import Incident
from control_plane.models.alerts import AlertChannel
from control_plane.settings import Settings
from tests.alert_delivery_support import (
    attempts,
    deliveries,
    dispatch,
    events,
    incident,
    insert_channel,
    open_down,
    resolve,
)
from tests.alert_receivers import HttpRecorder, http_recorder
from tests.conftest import World
from tests.factories import insert_monitor
from tests.incident_factories import insert_window

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def alert_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"alerts_allow_private_urls": True, "alert_send_timeout_seconds": 2})


@pytest.fixture
async def receiver() -> AsyncIterator[HttpRecorder]:
    async with http_recorder() as recorder:
        yield recorder


async def webhook_channel(db: Database, org_id: str, recorder: HttpRecorder) -> AlertChannel:
    return await insert_channel(
        db, org_id, config={"url": f"{recorder.url}/hook", "secret": SECRET}, created_at=utcnow()
    )


def test_backoff_doubles_from_1_second_with_full_jitter_capped_at_an_hour() -> None:
    for tries, ceiling in ((1, 1), (2, 2), (3, 4), (10, 512), (12, 2048), (13, 3600), (40, 3600)):
        samples = [backoff_seconds(tries) for _ in range(200)]
        assert all(0 <= sample <= ceiling for sample in samples)
        assert max(samples) > ceiling / 2  # spread over the range, not a fixed delay


async def test_an_incident_is_delivered_signed_with_its_event_id(
    database: Database, world: World, alert_settings: Settings, receiver: HttpRecorder
) -> None:
    now = utcnow()
    channel = await webhook_channel(database, world.org_a, receiver)
    monitor = await insert_monitor(database, world.org_a, name="Checkout API")
    incident_id = await open_down(database, monitor, now)

    assert await alert_pass(database, alert_settings, now=now) == 1  # the job's pass: fan-out, send

    [request] = receiver.requests
    [event] = await events(database)
    assert request.headers["webhook-id"] == event.id
    body = Webhook(SECRET).verify(request.body, request.headers)
    assert body["type"] == "incident.opened"
    assert incident_id in request.body.decode() and "Checkout API" in request.body.decode()
    [row] = await deliveries(database)
    assert (row.status, row.attempts, row.delivered_at, row.claimed_until) == ("delivered", 1, now, None)
    [attempt] = await attempts(database, row.id)
    assert (attempt.outcome, attempt.status_code, attempt.channel_id) == ("delivered", 200, channel.id)
    assert attempt.attempted_at == now and attempt.latency_ms > 0
    assert await deliver_all_due(database, alert_settings, now=now + timedelta(hours=1)) == 0


async def test_a_failing_receiver_is_retried_with_backoff_until_it_takes_it(
    database: Database, world: World, alert_settings: Settings
) -> None:
    now = utcnow()
    async with http_recorder(fail_first=2, fail_status=503) as recorder:
        await webhook_channel(database, world.org_a, recorder)
        monitor = await insert_monitor(database, world.org_a)
        await open_down(database, monitor, now)
        await dispatch(database, now)
        at = now
        for tries, ceiling in ((1, 1), (2, 2)):
            assert await deliver_due(database, alert_settings, now=at) == 1
            [row] = await deliveries(database)
            assert (row.status, row.attempts) == ("pending", tries)
            assert "HTTP 503" in (row.last_error or "")
            assert at <= row.next_attempt_at <= at + timedelta(seconds=ceiling)
            if row.next_attempt_at > at:  # not sent again before its time
                assert await deliver_due(database, alert_settings, now=at) == 0
            at = row.next_attempt_at
        assert await deliver_due(database, alert_settings, now=at) == 1
        [row] = await deliveries(database)
        assert (row.status, row.attempts, row.delivered_at, row.last_error) == ("delivered", 3, at, None)
        tried = await attempts(database, row.id)
        assert [(a.outcome, a.status_code) for a in tried] == [
            ("failed", 503),
            ("failed", 503),
            ("delivered", 200),
        ]
        assert len({request.headers["webhook-id"] for request in recorder.requests}) == 1
        assert len(recorder.requests) == 3


async def test_a_receiver_that_says_gone_fails_the_delivery_at_once(
    database: Database, world: World, alert_settings: Settings
) -> None:
    now = utcnow()
    async with http_recorder(status=410, reply="no such hook") as recorder:
        await webhook_channel(database, world.org_a, recorder)
        monitor = await insert_monitor(database, world.org_a)
        await open_down(database, monitor, now)
        await dispatch(database, now)
        assert await deliver_due(database, alert_settings, now=now) == 1
        [row] = await deliveries(database)
        assert (row.status, row.attempts) == ("failed", 1)
        assert "HTTP 410" in (row.last_error or "") and "no such hook" in (row.last_error or "")
        assert await deliver_all_due(database, alert_settings, now=now + timedelta(hours=2)) == 0
        assert len(recorder.requests) == 1


async def test_a_delivery_is_given_up_when_its_window_runs_out(
    database: Database, world: World, alert_settings: Settings
) -> None:
    now = utcnow()
    async with http_recorder(fail_first=1000) as recorder:
        await webhook_channel(database, world.org_a, recorder)
        monitor = await insert_monitor(database, world.org_a)
        await open_down(database, monitor, now)
        await dispatch(database, now)
        assert await deliver_due(database, alert_settings, now=now) == 1
        [row] = await deliveries(database)
        assert row.status == "pending"
        # The clock moves to its give-up time: one last attempt, then failed for good.
        assert await deliver_due(database, alert_settings, now=row.give_up_at) == 1
        [row] = await deliveries(database)
        assert (row.status, row.attempts) == ("failed", 2)
        assert await deliver_all_due(database, alert_settings, now=row.give_up_at + timedelta(days=1)) == 0
        assert len(recorder.requests) == 2


async def test_a_worker_killed_mid_send_loses_nothing_and_the_retry_keeps_the_id(
    database: Database, world: World, alert_settings: Settings
) -> None:
    now = utcnow()
    async with http_recorder(hang=True) as recorder:
        await webhook_channel(database, world.org_a, recorder)
        monitor = await insert_monitor(database, world.org_a)
        await open_down(database, monitor, now)
        await dispatch(database, now)
        worker = asyncio.create_task(deliver_due(database, alert_settings, now=now))
        await asyncio.wait_for(recorder.arrived.wait(), 5)
        worker.cancel()  # killed while the receiver has it
        with pytest.raises(asyncio.CancelledError):
            await worker
        [row] = await deliveries(database)
        assert (row.status, row.attempts) == ("pending", 0)
        assert row.claimed_until is not None and row.claimed_until > now
        # Another worker leaves it alone while the lease holds ...
        assert await deliver_due(database, alert_settings, now=now + timedelta(seconds=5)) == 0
        # ... and sends it again, under the same id, once it has run out.
        recorder.hang = False
        after_lease = row.claimed_until + timedelta(seconds=1)
        assert await deliver_due(database, alert_settings, now=after_lease) == 1
        [row] = await deliveries(database)
        assert (row.status, row.delivered_at) == ("delivered", after_lease)
        ids = [request.headers["webhook-id"] for request in recorder.requests]
        assert len(ids) == 2 and len(set(ids)) == 1 and ids[0] == row.idempotency_key


async def test_a_channel_disabled_before_sending_skips_its_delivery(
    database: Database, world: World, alert_settings: Settings, receiver: HttpRecorder
) -> None:
    now = utcnow()
    channel = await webhook_channel(database, world.org_a, receiver)
    monitor = await insert_monitor(database, world.org_a)
    await open_down(database, monitor, now)
    await dispatch(database, now)
    async with database.session() as session:
        await session.execute(update(AlertChannel).values(is_active=False))
        await session.commit()
    assert await deliver_due(database, alert_settings, now=now) == 1
    [row] = await deliveries(database)
    assert (row.status, row.attempts, row.channel_id) == ("skipped", 0, channel.id)
    assert receiver.requests == []
    assert await attempts(database, row.id) == []


async def test_a_channel_type_without_a_sender_fails_at_once(
    database: Database, world: World, alert_settings: Settings
) -> None:
    now = utcnow()
    await insert_channel(
        database, world.org_a, type="EMAIL", config={"recipients": ["a@a.example"]}, created_at=now
    )
    monitor = await insert_monitor(database, world.org_a)
    await open_down(database, monitor, now)
    await dispatch(database, now)
    assert await deliver_due(database, alert_settings, now=now, senders={}) == 1
    [row] = await deliveries(database)
    assert (row.status, row.last_error) == ("failed", "no sender for EMAIL")


async def test_a_resolve_waits_for_its_open_to_go_out_first(
    database: Database, world: World, alert_settings: Settings
) -> None:
    now = utcnow()
    async with http_recorder(fail_first=1) as recorder:
        await webhook_channel(database, world.org_a, recorder)
        monitor = await insert_monitor(database, world.org_a)
        incident_id = await open_down(database, monitor, now)
        await resolve(database, monitor, incident_id, now + timedelta(seconds=30))
        await dispatch(database, now + timedelta(seconds=30))
        # The open fails once; the resolve, due too, is held back behind it.
        assert await deliver_all_due(database, alert_settings, now=now + timedelta(seconds=30)) == 1
        assert len(recorder.requests) == 1
        opened = next(row for row in await deliveries(database) if row.kind == "incident.opened")
        assert await deliver_all_due(database, alert_settings, now=opened.next_attempt_at) == 2
        types = [request.json()["type"] for request in recorder.requests]
        assert types == ["incident.opened", "incident.opened", "incident.resolved"]
        assert {row.status for row in await deliveries(database)} == {"delivered"}


@pytest.mark.postgres_only
async def test_two_workers_share_the_outbox_and_each_event_is_received_once(
    database: Database, world: World, alert_settings: Settings, receiver: HttpRecorder
) -> None:
    now = utcnow()
    small_batches = alert_settings.model_copy(update={"alert_delivery_batch": 15})
    await webhook_channel(database, world.org_a, receiver)
    for index in range(200):
        monitor = await insert_monitor(database, world.org_a, name=f"Monitor {index}")
        await open_down(database, monitor, now)
    while await dispatch(database, now):
        pass
    other = Database(database.url)  # a second replica: its own engine and connections
    try:
        counts = await asyncio.gather(
            deliver_all_due(database, small_batches, now=now),
            deliver_all_due(other, small_batches, now=now),
        )
    finally:
        await other.dispose()
    assert sum(counts) == 200 and all(count > 0 for count in counts)
    received = collections.Counter(request.headers["webhook-id"] for request in receiver.requests)
    assert len(received) == 200 and set(received.values()) == {1}
    assert {row.status for row in await deliveries(database)} == {"delivered"}


async def test_reminders_repeat_while_down_and_stop_once_acknowledged(
    database: Database, world: World, alert_settings: Settings, receiver: HttpRecorder
) -> None:
    now = utcnow()
    await webhook_channel(database, world.org_a, receiver)
    monitor = await insert_monitor(database, world.org_a, config={"reminderIntervalMinutes": 30})
    quiet = await insert_monitor(database, world.org_a)  # no reminders asked for
    incident_id = await open_down(database, monitor, now)
    await open_down(database, quiet, now)
    await alert_pass(database, alert_settings, now=now)
    assert len(receiver.requests) == 2

    async def reminders_at(minutes: int) -> int:
        async with database.session() as session:
            return await remind(session, now=now + timedelta(minutes=minutes))

    assert await reminders_at(29) == 0
    assert await reminders_at(30) == 1
    assert await reminders_at(31) == 0
    assert await reminders_at(59) == 0
    assert await reminders_at(60) == 1
    row = await incident(database, incident_id)
    assert (row.reminders, row.reminded_at) == (2, now + timedelta(minutes=60))
    reminders = [event for event in await events(database) if event.type == "incident.reminder"]
    assert [event.payload["count"] for event in reminders] == [1, 2]
    assert reminders[0].payload["cause"] == "Connection refused"

    await alert_pass(database, alert_settings, now=now + timedelta(minutes=61))
    sent = [request.json()["type"] for request in receiver.requests]
    assert sent.count("incident.reminder") == 2

    # Not during maintenance ...
    await insert_window(database, world.org_a, now + timedelta(minutes=80), now + timedelta(minutes=100))
    assert await reminders_at(90) == 0
    assert await reminders_at(100) == 1
    # ... and never once acknowledged.
    async with database.session() as session:
        await session.execute(
            update(Incident)
            .where(Incident.id == incident_id)
            .values(acknowledged_at=now + timedelta(minutes=101))
        )
        await session.commit()
    assert await reminders_at(200) == 0


async def test_the_alerts_loop_passes_on_its_interval_and_at_once_when_woken(
    database: Database, world: World, alert_settings: Settings, receiver: HttpRecorder
) -> None:
    slow = alert_settings.model_copy(update={"alert_delivery_seconds": 60})
    await webhook_channel(database, world.org_a, receiver)
    loop = AlertsLoop(database, slow, utcnow)
    task = asyncio.create_task(loop.run())
    try:
        await asyncio.sleep(0.3)  # its first pass: nothing yet; the next is a minute away
        monitor = await insert_monitor(database, world.org_a)
        await open_down(database, monitor, utcnow())
        await asyncio.sleep(0.5)
        assert receiver.requests == []  # not before its interval ...
        loop.wake()  # ... unless woken (the heartbeat sweep does, the incident_events topic does)
        await asyncio.wait_for(receiver.arrived.wait(), 5)
        assert [request.json()["type"] for request in receiver.requests] == ["incident.opened"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize(
    ("minutes", "accepted"), [(1, True), (10080, True), (0, False), (10081, False), ("30", False)]
)
async def test_the_reminder_interval_is_a_monitor_config_key_of_1_to_10080_minutes(
    api: httpx.AsyncClient, world: World, minutes: object, accepted: bool
) -> None:
    body = {
        "name": "Reminded",
        "url": "https://api.example.com/health",
        "type": "HTTP",
        "config": {"reminderIntervalMinutes": minutes},
    }
    response = await api.post("/api/monitors", json=body, headers=world.alice.headers)
    if accepted:
        assert response.status_code == 201, response.text
        assert response.json()["data"]["config"] == {"reminderIntervalMinutes": minutes}
    else:
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith("config.reminderIntervalMinutes")
