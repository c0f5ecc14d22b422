"""A channel's test notification: sent now, through the channel's sender and the guarded session,
and recorded as a delivery of kind "test" with its one attempt (listed with the channel's
deliveries). A disabled channel can still be tested."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.alerts.guard import outbound_session
from control_plane.alerts.notification import TEST, Notification, SendContext, SendOutcome
from control_plane.core.ids import new_id
from control_plane.models import AlertChannel, AlertDelivery, DeliveryAttempt
from control_plane.models.alerts import DELIVERY_DELIVERED, DELIVERY_FAILED
from control_plane.settings import Settings

TEST_MESSAGE = "This is a test notification from Traxo: this channel receives your alerts."


@dataclass(frozen=True, slots=True)
class ChannelTestResult:
    delivered: bool
    status_code: int | None
    error: str | None
    latency_ms: float
    attempted_at: datetime


def build_test_notification(channel: AlertChannel, notification_id: str, now: datetime) -> Notification:
    return Notification(
        id=notification_id,
        type=TEST,
        occurred_at=now,
        org_id=channel.org_id,
        monitor=None,
        incident=None,
        message=TEST_MESSAGE,
    )


async def _send(
    channel: AlertChannel, notification: Notification, settings: Settings, now: datetime
) -> SendOutcome:
    from control_plane.alerts.senders import SENDERS  # the senders load their libraries lazily

    sender = SENDERS.get(channel.type)
    if sender is None:
        return SendOutcome(delivered=False, error=f"{channel.type} channels cannot send yet", retryable=False)
    async with outbound_session(settings) as http:
        try:
            return await sender(dict(channel.config), notification, SendContext(settings, http, {"now": now}))
        except Exception as exc:  # a sender's bug must answer the test, not fail the request
            return SendOutcome(delivered=False, error=f"{type(exc).__name__}: {exc}"[:300], retryable=False)


async def send_test(
    session: AsyncSession, settings: Settings, channel: AlertChannel, *, now: datetime
) -> ChannelTestResult:
    """Sends the test now and records it. The session's transaction is not held open while
    sending (the channel was read before; the records are written after)."""
    notification_id = new_id("tst")
    notification = build_test_notification(channel, notification_id, now)
    await session.commit()  # end the read transaction: sending may take the whole timeout
    started = time.perf_counter()
    outcome = await _send(channel, notification, settings, now)
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    status = DELIVERY_DELIVERED if outcome.delivered else DELIVERY_FAILED
    delivery = AlertDelivery(
        id=new_id("dlv"),
        org_id=channel.org_id,
        channel_id=channel.id,
        event_id=None,
        incident_id=None,
        kind=TEST,
        idempotency_key=notification_id,
        status=status,
        attempts=1,
        next_attempt_at=now,
        give_up_at=now,
        created_at=now,
        delivered_at=now if outcome.delivered else None,
        last_error=outcome.error,
    )
    try:
        session.add(delivery)
        await session.flush()
        session.add(
            DeliveryAttempt(
                id=new_id("dat"),
                delivery_id=delivery.id,
                channel_id=channel.id,
                attempted_at=now,
                outcome=status,
                latency_ms=latency_ms,
                status_code=outcome.status_code,
                error=outcome.error,
            )
        )
        await session.commit()
    except IntegrityError:  # the channel was deleted while the test was being sent
        await session.rollback()
    return ChannelTestResult(outcome.delivered, outcome.status_code, outcome.error, latency_ms, now)
