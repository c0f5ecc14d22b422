"""WEBHOOK sender against a local receiver: the Standard Webhooks signature verified with the
`standardwebhooks` library, the JSON event, and what each kind of receiver failure means."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from control_plane.alerts.senders import SENDERS, webhook
from tests.alert_receivers import (
    channel_test_notification,
    down_notification,
    http_recorder,
    resolved_notification,
    sender_context,
)
from tests.processes import free_port

SECRET = "whsec_" + base64.b64encode(b"a secret key of thirty-two bytes").decode()


async def test_it_posts_a_signed_event_that_standardwebhooks_verifies() -> None:
    async with http_recorder(status=204) as receiver, sender_context() as context:
        outcome = await SENDERS["WEBHOOK"](
            {"url": receiver.url + "/hooks/traxo", "secret": SECRET}, down_notification(), context
        )
    assert outcome.delivered and outcome.status_code == 204 and outcome.error is None
    [request] = receiver.requests
    assert request.method == "POST" and request.path == "/hooks/traxo"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "Traxo-Webhooks/1"
    assert request.headers["webhook-id"] == "iev_0001"
    verified = Webhook(SECRET).verify(request.body, request.headers)
    assert verified == request.json()
    assert verified["type"] == "incident.opened" and verified["id"] == "iev_0001"
    assert verified["timestamp"] == "2026-03-02T09:00:00.000Z"
    assert verified["data"]["monitor"] == {
        "id": "mon_1",
        "name": "Production API",
        "url": "https://api.example.com/health",
        "type": "HTTP",
    }
    incident = verified["data"]["incident"]
    assert incident["id"] == "inc_1" and incident["kind"] == "DOWN"
    assert incident["cause"] == "expected a 2xx status, got 503"
    assert incident["regions"] == ["eu-west", "us-east"]
    assert incident["startedAt"] == "2026-03-02T09:00:00.000Z" and incident["resolvedAt"] is None
    assert verified["data"]["link"] == "https://traxo.example.com/api/incidents/inc_1"


async def test_a_tampered_body_fails_verification() -> None:
    async with http_recorder() as receiver, sender_context() as context:
        await webhook.send({"url": receiver.url, "secret": SECRET}, down_notification(), context)
    [request] = receiver.requests
    tampered = request.body.replace(b"Production", b"Staging")
    with pytest.raises(WebhookVerificationError, match="signature"):
        Webhook(SECRET).verify(tampered, request.headers)


async def test_the_signature_matches_the_library_and_uses_the_send_time() -> None:
    body = b'{"type":"test"}'
    sent_at = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
    expected = Webhook(SECRET).sign("msg_1", sent_at, body.decode())
    assert webhook.sign(SECRET, "msg_1", int(sent_at.timestamp()), body) == expected
    async with http_recorder() as receiver, sender_context() as context:
        context.extra["now"] = sent_at
        await webhook.send({"url": receiver.url, "secret": SECRET}, down_notification(), context)
    assert receiver.requests[0].headers["webhook-timestamp"] == str(int(sent_at.timestamp()))


async def test_resolved_and_test_events_carry_their_own_data() -> None:
    async with http_recorder() as receiver, sender_context() as context:
        await webhook.send({"url": receiver.url, "secret": SECRET}, resolved_notification(), context)
        await webhook.send({"url": receiver.url}, channel_test_notification(), context)
    resolved, test = (json.loads(r.body) for r in receiver.requests)
    assert resolved["type"] == "incident.resolved"
    assert resolved["data"]["incident"]["resolvedAt"] == "2026-03-02T09:03:00.000Z"
    assert resolved["data"]["incident"]["durationSeconds"] == 180
    assert resolved["data"]["message"] == "Production API recovered after 3 minutes"
    assert test["type"] == "test" and test["id"] == "test_0001"
    assert test["data"]["monitor"] is None and test["data"]["incident"] is None
    assert "webhook-signature" not in receiver.requests[1].headers  # no secret, no signature


async def test_a_failing_receiver_is_retryable() -> None:
    async with http_recorder(fail_first=1) as receiver, sender_context() as context:
        first = await webhook.send({"url": receiver.url}, down_notification(), context)
        second = await webhook.send({"url": receiver.url}, down_notification(), context)
    assert not first.delivered and first.retryable and first.status_code == 500
    assert first.error == "HTTP 500 from 127.0.0.1: receiver is failing on purpose"
    assert second.delivered


async def test_a_permanent_4xx_is_not_retried_but_429_is() -> None:
    async with http_recorder(status=410, reply="gone") as receiver, sender_context() as context:
        gone = await webhook.send({"url": receiver.url}, down_notification(), context)
        receiver.status = 429
        limited = await webhook.send({"url": receiver.url}, down_notification(), context)
    assert not gone.delivered and not gone.retryable and gone.status_code == 410
    assert gone.error == "HTTP 410 from 127.0.0.1: gone"
    assert not limited.delivered and limited.retryable and limited.status_code == 429


async def test_a_hanging_receiver_times_out() -> None:
    async with (
        http_recorder(hang=True) as receiver,
        sender_context(alert_send_timeout_seconds=0.3) as context,
    ):
        outcome = await webhook.send({"url": receiver.url}, down_notification(), context)
    assert not outcome.delivered and outcome.retryable and outcome.status_code is None
    assert outcome.error == "timed out after 0.3 s"
    assert len(receiver.requests) == 1


async def test_connection_refused_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    async with sender_context() as context:
        outcome = await webhook.send({"url": url}, down_notification(), context)
    assert not outcome.delivered and outcome.retryable
    assert outcome.error == "connection refused by 127.0.0.1"


async def test_a_guard_refusal_is_permanent() -> None:
    async with (
        http_recorder() as receiver,
        sender_context(alerts_allow_private_urls=False) as context,
    ):
        outcome = await webhook.send({"url": receiver.url}, down_notification(), context)
    assert not outcome.delivered and not outcome.retryable
    assert outcome.error is not None and outcome.error.startswith("refused: 127.0.0.1")
    assert receiver.requests == []
