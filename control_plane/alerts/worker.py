"""Delivery: claim due deliveries, send them, record each attempt, retry with backoff.

A claim takes a lease (`claimed_until`) and commits before anything is sent, so a worker killed
mid-send leaves the delivery to be sent again once the lease runs out, under the same idempotency
key (receivers honouring webhook-id or dedup_key see it once). Claims use `FOR UPDATE SKIP
LOCKED`: every replica runs the worker and each delivery goes to one of them at a time.

Order: a delivery is not sent while an earlier one (by its event's time) of the same incident and
channel is still pending, so a receiver hears "opened" before "resolved".
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy import Table, bindparam, exists, insert, or_, select, update
from sqlalchemy.orm import aliased

from control_plane.alerts.guard import outbound_session
from control_plane.alerts.notification import (
    IncidentInfo,
    MonitorInfo,
    Notification,
    SendContext,
    Sender,
    SendOutcome,
)
from control_plane.alerts.senders import SENDERS
from control_plane.core.ids import new_id
from control_plane.db import Database, brief_error
from control_plane.models import Incident, IncidentEvent, Monitor
from control_plane.models.alerts import (
    DELIVERY_DELIVERED,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    DELIVERY_SKIPPED,
    AlertChannel,
    AlertDelivery,
    DeliveryAttempt,
)
from control_plane.observability.metrics import ALERT_GIVEN_UP, count_alert_attempt
from control_plane.settings import Settings

# A receiver failing once is retried within a second; doubling reaches the hour's cap by the 13th try.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 3600.0
SEND_GRACE_SECONDS = 5.0  # a send is abandoned this long after the send timeout, whatever it does
LEASE_MARGIN_SECONDS = 5.0  # for recording the outcomes
CONCURRENCY = 20  # sends in flight at once, per worker


def backoff_seconds(attempts: int) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^(attempts - 1))] after `attempts` tries."""
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0)))


def lease_seconds(settings: Settings) -> float:
    """Longer than a whole batch can take: its sends go CONCURRENCY at a time, each abandoned
    after the send timeout plus a grace, so no other worker takes over one still being sent."""
    waves = math.ceil(settings.alert_delivery_batch / CONCURRENCY)
    return waves * (settings.alert_send_timeout_seconds + SEND_GRACE_SECONDS) + LEASE_MARGIN_SECONDS


@dataclass(frozen=True, slots=True)
class _Job:
    delivery: AlertDelivery
    channel: AlertChannel | None
    notification: Notification | None


@dataclass(frozen=True, slots=True)
class _Result:
    status: str
    outcome: SendOutcome | None
    latency_ms: float


async def deliver_due(
    db: Database,
    settings: Settings,
    *,
    now: datetime,
    senders: dict[str, Sender] = SENDERS,
    http: aiohttp.ClientSession | None = None,
) -> int:
    """Claim one batch of due deliveries (up to settings.alert_delivery_batch), send them and
    record the outcomes. Returns how many were claimed (0: nothing due)."""
    lease = now + timedelta(seconds=lease_seconds(settings))
    claimed = await _claim(db, settings, now=now, lease=lease)
    if not claimed:
        return 0
    jobs = await _load(db, settings, claimed)
    own_http = http is None
    session_http = outbound_session(settings) if http is None else http
    try:
        context = SendContext(settings, session_http, {"now": now})
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(job: _Job) -> _Result:
            async with gate:
                return await _send(job, senders, context, settings)

        results = await asyncio.gather(*(one(job) for job in jobs))
    finally:
        if own_http:
            await session_http.close()
    await _record(db, list(zip(jobs, results, strict=True)), now=now, lease=lease)
    return len(jobs)


async def _claim(db: Database, settings: Settings, *, now: datetime, lease: datetime) -> list[str]:
    earlier = aliased(AlertDelivery)
    earlier_event = aliased(IncidentEvent)
    this_event = aliased(IncidentEvent)
    blocked = exists().where(
        earlier.channel_id == AlertDelivery.channel_id,
        earlier.incident_id == AlertDelivery.incident_id,
        earlier.status == DELIVERY_PENDING,
        earlier.id != AlertDelivery.id,
        earlier_event.id == earlier.event_id,
        earlier_event.occurred_at < this_event.occurred_at,
    )
    async with db.session() as session:
        ids = list(
            await session.scalars(
                select(AlertDelivery.id)
                .outerjoin(this_event, this_event.id == AlertDelivery.event_id)
                .where(
                    AlertDelivery.status == DELIVERY_PENDING,
                    AlertDelivery.next_attempt_at <= now,
                    or_(AlertDelivery.claimed_until.is_(None), AlertDelivery.claimed_until < now),
                    or_(AlertDelivery.incident_id.is_(None), ~blocked),
                )
                .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
                .limit(settings.alert_delivery_batch)
                .with_for_update(skip_locked=True, of=AlertDelivery)
            )
        )
        if ids:
            await session.execute(
                update(AlertDelivery)
                .where(AlertDelivery.id.in_(ids))
                .values(claimed_until=lease)
                .execution_options(synchronize_session=False)
            )
        await session.commit()
    return ids


async def _load(db: Database, settings: Settings, ids: list[str]) -> list[_Job]:
    """The claimed deliveries with their channel, event, incident and monitor: one query."""
    async with db.session() as session:
        rows = await session.execute(
            select(AlertDelivery, AlertChannel, IncidentEvent, Incident, Monitor)
            .outerjoin(AlertChannel, AlertChannel.id == AlertDelivery.channel_id)
            .outerjoin(IncidentEvent, IncidentEvent.id == AlertDelivery.event_id)
            .outerjoin(Incident, Incident.id == AlertDelivery.incident_id)
            .outerjoin(Monitor, Monitor.id == Incident.monitor_id)
            .where(AlertDelivery.id.in_(ids))
        )
        return [_Job(row[0], row[1], _notification(settings, row[0], row[2], row[3], row[4])) for row in rows]


def _notification(
    settings: Settings,
    delivery: AlertDelivery,
    event: IncidentEvent | None,
    incident: Incident | None,
    monitor: Monitor | None,
) -> Notification | None:
    if event is None or incident is None or monitor is None:
        return None  # a test delivery is sent by the channels API itself, not from here
    duration = (
        int((incident.resolved_at - incident.started_at).total_seconds())
        if incident.resolved_at is not None
        else None
    )
    return Notification(
        id=delivery.idempotency_key,
        type=delivery.kind,
        occurred_at=event.occurred_at,
        org_id=delivery.org_id,
        monitor=MonitorInfo(id=monitor.id, name=monitor.name, url=monitor.url, type=monitor.type),
        incident=IncidentInfo(
            id=incident.id,
            kind=incident.kind,
            cause=incident.cause,
            regions=tuple(incident.regions or ()),
            started_at=incident.started_at,
            resolved_at=incident.resolved_at,
            duration_seconds=duration,
            status=incident.status,
            flapping=incident.flapping,
        ),
        message=_message(event),
        link=f"{settings.public_url}/api/incidents/{incident.id}",
    )


def _message(event: IncidentEvent) -> str | None:
    payload = event.payload or {}
    if event.type == "incident.updated":
        return str(payload.get("message") or "") or None
    if event.type == "incident.reminder":
        return f"Reminder {payload.get('count', 1)}: still down ({payload.get('cause') or 'no cause'})"
    if event.type == "incident.flapping":
        return f"Flapping: {payload.get('transitions', '?')} changes between down and up in the last hour"
    if event.type == "incident.acknowledged":
        return "Acknowledged"
    return None


async def _send(job: _Job, senders: dict[str, Sender], context: SendContext, settings: Settings) -> _Result:
    channel = job.channel
    if channel is None or not channel.is_active:
        return _Result(DELIVERY_SKIPPED, None, 0.0)
    if job.notification is None:
        return _Result(DELIVERY_SKIPPED, None, 0.0)
    sender = senders.get(channel.type)
    if sender is None:
        outcome = SendOutcome(delivered=False, error=f"no sender for {channel.type}", retryable=False)
        return _Result(DELIVERY_FAILED, outcome, 0.0)
    started = time.perf_counter()
    try:
        outcome = await asyncio.wait_for(
            sender(dict(channel.config), job.notification, context),
            timeout=settings.alert_send_timeout_seconds + SEND_GRACE_SECONDS,
        )
    except TimeoutError:
        outcome = SendOutcome(delivered=False, error="timed out")
    except Exception as exc:  # a sender's bug must not stop the batch: retried, then given up
        outcome = SendOutcome(delivered=False, error=brief_error(exc))
    latency_ms = (time.perf_counter() - started) * 1000
    count_alert_attempt(channel.type, delivered=outcome.delivered)
    status = DELIVERY_DELIVERED if outcome.delivered else DELIVERY_PENDING
    return _Result(status, outcome, latency_ms)


async def _record(db: Database, done: list[tuple[_Job, _Result]], *, now: datetime, lease: datetime) -> None:
    """Every outcome of the batch in one executemany (and its attempts in one insert)."""
    attempts = []
    updates = []
    for job, result in done:
        delivery = job.delivery
        row: dict[str, object] = {
            "b_id": delivery.id,
            "b_lease": lease,
            "v_status": delivery.status,
            "v_attempts": delivery.attempts,
            "v_last_error": delivery.last_error,
            "v_delivered_at": delivery.delivered_at,
            "v_next_attempt_at": delivery.next_attempt_at,
        }
        if result.outcome is None:  # skipped: nothing was sent
            row |= {"v_status": DELIVERY_SKIPPED, "v_last_error": "channel disabled or deleted"}
        else:
            outcome = result.outcome
            tries = delivery.attempts + 1
            row |= {"v_attempts": tries, "v_last_error": outcome.error}
            attempts.append(
                {
                    "id": new_id("dat"),
                    "delivery_id": delivery.id,
                    "channel_id": delivery.channel_id,
                    "attempted_at": now,
                    "outcome": "delivered" if outcome.delivered else "failed",
                    "latency_ms": round(result.latency_ms, 3),
                    "status_code": outcome.status_code,
                    "error": outcome.error,
                }
            )
            if outcome.delivered:
                row |= {"v_status": DELIVERY_DELIVERED, "v_delivered_at": now}
            else:
                retry_at = now + timedelta(seconds=backoff_seconds(tries))
                if not outcome.retryable or retry_at >= delivery.give_up_at:
                    row |= {"v_status": DELIVERY_FAILED}
                    ALERT_GIVEN_UP.labels(job.channel.type if job.channel else "unknown").inc()
                else:
                    row |= {"v_next_attempt_at": retry_at}
        updates.append(row)
    async with db.session() as session:
        if updates:
            await session.execute(_RECORD, updates)
        if attempts:
            await session.execute(insert(DeliveryAttempt), attempts)
        await session.commit()


_DELIVERIES: Table = AlertDelivery.__table__  # type: ignore[assignment]
# Only while our lease holds: a worker that took a delivery over after it ran out records its own.
_RECORD = (
    _DELIVERIES.update()
    .where(
        _DELIVERIES.c.id == bindparam("b_id"),
        _DELIVERIES.c.status == DELIVERY_PENDING,
        _DELIVERIES.c.claimed_until == bindparam("b_lease"),
    )
    .values(
        status=bindparam("v_status"),
        attempts=bindparam("v_attempts"),
        last_error=bindparam("v_last_error"),
        delivered_at=bindparam("v_delivered_at"),
        next_attempt_at=bindparam("v_next_attempt_at"),
        claimed_until=None,
    )
)


async def deliver_all_due(
    db: Database, settings: Settings, *, now: datetime, senders: dict[str, Sender] = SENDERS
) -> int:
    """`deliver_due` until nothing is due at `now`; one outbound session for all of it."""
    total = 0
    http = outbound_session(settings)
    try:
        while count := await deliver_due(db, settings, now=now, senders=senders, http=http):
            total += count
    finally:
        await http.close()
    return total
