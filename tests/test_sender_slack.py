"""SLACK sender against a local receiver standing in for an incoming webhook: the Block Kit body
for down, recovery, flapping, update, reminder and test notifications."""

from __future__ import annotations

import dataclasses
from typing import Any

from control_plane.alerts.senders import SENDERS
from tests.alert_receivers import (
    channel_test_notification,
    down_notification,
    http_recorder,
    resolved_notification,
    sender_context,
)


async def sent_body(notification: Any) -> dict[str, Any]:
    async with http_recorder() as receiver, sender_context() as context:
        outcome = await SENDERS["SLACK"](
            {"webhookUrl": receiver.url + "/services/T0/B0/xyz"}, notification, context
        )
    assert outcome.delivered and outcome.status_code == 200
    [request] = receiver.requests
    assert request.path == "/services/T0/B0/xyz"
    assert request.headers["Content-Type"] == "application/json"
    body: dict[str, Any] = request.json()
    return body


def fields(body: dict[str, Any]) -> dict[str, str]:
    [section] = [b for b in body["blocks"] if b["type"] == "section"]
    return dict(f["text"].lstrip("*").split("*\n", 1) for f in section["fields"])


async def test_a_down_message_has_header_facts_and_context() -> None:
    body = await sent_body(down_notification())
    assert body["text"] == "Production API is down"
    header, _section, context = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "🔴 Production API is down", "emoji": True},
    }
    facts = fields(body)
    assert facts["Cause"] == "expected a 2xx status, got 503"
    assert facts["Regions"] == "eu-west, us-east"
    assert facts["Started"] == "2026-03-02T09:00:00.000Z"
    assert facts["Monitor"] == "Production API (https://api.example.com/health)"
    assert "Duration" not in facts
    [element] = context["elements"]
    assert element["text"].startswith("Incident inc_1 · Notification iev_0001")
    assert "<https://traxo.example.com/api/incidents/inc_1|Open in Traxo>" in element["text"]


async def test_a_recovery_says_how_long_it_lasted() -> None:
    body = await sent_body(resolved_notification())
    assert body["blocks"][0]["text"]["text"] == "✅ Production API recovered after 3 minutes"
    facts = fields(body)
    assert facts["Duration"] == "3 minutes"
    assert facts["Resolved"] == "2026-03-02T09:03:00.000Z"


async def test_flapping_update_reminder_and_test_headers() -> None:
    opened = down_notification()
    flapping = dataclasses.replace(opened, type="incident.flapping")
    update = dataclasses.replace(opened, type="incident.updated", message="Rolling back <v2>")
    reminder = dataclasses.replace(opened, type="incident.reminder")
    headers = [
        (await sent_body(n))["blocks"][0]["text"]["text"]
        for n in (flapping, update, reminder, channel_test_notification())
    ]
    assert headers == [
        "🟠 Production API is flapping (going down and up repeatedly)",
        "📝 Update on Production API",
        "🔁 Production API is still down",
        "🧪 Test notification from Traxo",
    ]
    assert fields(await sent_body(update))["Message"] == "Rolling back &lt;v2&gt;"


async def test_a_slack_error_is_reported_with_its_body() -> None:
    async with http_recorder(status=404, reply="no_service") as receiver, sender_context() as ctx:
        outcome = await SENDERS["SLACK"]({"webhookUrl": receiver.url}, down_notification(), ctx)
    assert not outcome.delivered and not outcome.retryable
    assert outcome.error == "HTTP 404 from 127.0.0.1: no_service"
