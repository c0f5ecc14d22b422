"""PAGERDUTY sender against a local Events API v2 receiver (settings.pagerduty_events_url):
trigger, acknowledge and resolve on the incident's dedup_key; updates send nothing; a test is a
trigger and a resolve."""

from __future__ import annotations

import dataclasses
from typing import Any

from control_plane.alerts.notification import IncidentInfo, Notification
from control_plane.alerts.senders import SENDERS
from tests.alert_receivers import (
    HttpRecorder,
    channel_test_notification,
    down_notification,
    http_recorder,
    resolved_notification,
    sender_context,
)

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
ACCEPTED = '{"status":"success","message":"Event processed","dedup_key":"inc_1"}'


async def send_all(*notifications: Notification, **receiver: Any) -> tuple[list[Any], HttpRecorder]:
    options: dict[str, Any] = {"status": 202, "reply": ACCEPTED} | receiver
    async with http_recorder(**options) as recorder:
        async with sender_context(pagerduty_events_url=recorder.url + "/v2/enqueue") as context:
            outcomes = [
                await SENDERS["PAGERDUTY"]({"routingKey": ROUTING_KEY}, n, context) for n in notifications
            ]
    return outcomes, recorder


async def test_an_opened_incident_triggers_with_the_incident_as_dedup_key() -> None:
    [outcome], receiver = await send_all(down_notification())
    assert outcome.delivered and outcome.status_code == 202
    [request] = receiver.requests
    assert request.path == "/v2/enqueue"
    event = request.json()
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger" and event["dedup_key"] == "inc_1"
    payload = event["payload"]
    assert payload["summary"] == "Production API is down: expected a 2xx status, got 503"
    assert payload["severity"] == "critical"
    assert payload["source"] == "https://api.example.com/health"
    assert payload["timestamp"] == "2026-03-02T09:00:00.000Z"
    assert payload["custom_details"]["regions"] == ["eu-west", "us-east"]
    assert payload["custom_details"]["incident"] == "inc_1"
    assert event["links"] == [
        {"href": "https://traxo.example.com/api/incidents/inc_1", "text": "Incident in Traxo"}
    ]


async def test_each_event_type_maps_to_its_action() -> None:
    opened = down_notification()
    notifications = [
        dataclasses.replace(opened, id="iev_r", type="incident.reminder"),
        dataclasses.replace(opened, id="iev_f", type="incident.flapping"),
        dataclasses.replace(opened, id="iev_a", type="incident.acknowledged"),
        dataclasses.replace(opened, id="iev_u", type="incident.updated", message="Rolling back"),
        resolved_notification(),
    ]
    outcomes, receiver = await send_all(*notifications)
    assert all(o.delivered for o in outcomes)
    updated = outcomes[3]
    assert updated.status_code is None and updated.error is None  # the no-op
    events = [r.json() for r in receiver.requests]
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [
        ("trigger", "inc_1"),
        ("trigger", "inc_1"),
        ("acknowledge", "inc_1"),
        ("resolve", "inc_1"),
    ]
    assert "payload" not in events[2] and "payload" not in events[3]


async def test_certificate_and_dns_incidents_are_warnings() -> None:
    opened = down_notification()
    assert opened.incident is not None
    ssl = dataclasses.replace(
        opened,
        incident=dataclasses.replace(opened.incident, kind="SSL_EXPIRY", cause="expires in 5 days"),
    )
    dns: IncidentInfo = dataclasses.replace(opened.incident, kind="DNS_CHANGE", cause="A changed")
    _, receiver = await send_all(ssl, dataclasses.replace(opened, incident=dns))
    first, second = (r.json()["payload"] for r in receiver.requests)
    assert first["severity"] == "warning" and second["severity"] == "warning"
    assert first["summary"] == ("Production API has a certificate about to expire: expires in 5 days")


async def test_a_test_is_a_trigger_then_a_resolve_on_its_own_key() -> None:
    [outcome], receiver = await send_all(channel_test_notification())
    assert outcome.delivered
    events = [r.json() for r in receiver.requests]
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [
        ("trigger", "test_0001"),
        ("resolve", "test_0001"),
    ]


async def test_a_failed_trigger_of_a_test_sends_no_resolve() -> None:
    [outcome], receiver = await send_all(channel_test_notification(), fail_first=1)
    assert not outcome.delivered and outcome.retryable and outcome.status_code == 500
    assert len(receiver.requests) == 1


async def test_an_invalid_event_is_permanent_and_throttling_is_not() -> None:
    invalid = '{"status":"invalid event","message":"Event object is invalid"}'
    [bad], _ = await send_all(down_notification(), status=400, reply=invalid)
    assert not bad.delivered and not bad.retryable and bad.status_code == 400
    assert bad.error is not None and "Event object is invalid" in bad.error
    [throttled], _ = await send_all(down_notification(), status=429, reply="")
    assert not throttled.delivered and throttled.retryable
    assert throttled.error == "HTTP 429 from 127.0.0.1"
