"""APPRISE sender through Apprise's generic json:// and form:// services against a local receiver:
delivery, receiver failures, the guard's check of each URL's host, URLs Apprise does not know."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from control_plane.alerts.notification import Notification, SendOutcome
from control_plane.alerts.senders import SENDERS
from tests.alert_receivers import (
    HttpRecorder,
    down_notification,
    http_recorder,
    resolved_notification,
    sender_context,
)
from tests.processes import free_port


def apprise_url(receiver: HttpRecorder, scheme: str = "json") -> str:
    return f"{scheme}://127.0.0.1:{receiver.port}/notify"


async def send(urls: list[str], notification: Notification, **settings: Any) -> SendOutcome:
    async with sender_context(**settings) as context:
        return await SENDERS["APPRISE"]({"urls": urls}, notification, context)


async def test_json_service_gets_the_title_and_text() -> None:
    async with http_recorder() as receiver:
        outcome = await send([apprise_url(receiver)], down_notification())
    assert outcome.delivered and outcome.error is None
    [request] = receiver.requests
    assert request.path == "/notify"
    body = request.json()
    assert body["title"] == "Production API is down"
    assert body["type"] == "failure"
    assert "Cause: expected a 2xx status, got 503" in body["message"]
    assert "Regions: eu-west, us-east" in body["message"]
    assert "Started: 2026-03-02T09:00:00.000Z" in body["message"]


async def test_form_service_and_a_recovery() -> None:
    async with http_recorder() as receiver:
        outcome = await send([apprise_url(receiver, "form")], resolved_notification())
    assert outcome.delivered
    form = parse_qs(receiver.requests[0].body.decode())
    assert form["title"] == ["Production API recovered after 3 minutes"]
    assert form["type"] == ["success"]
    assert "Duration: 3 minutes" in form["message"][0]


async def test_every_url_is_notified() -> None:
    async with http_recorder() as first, http_recorder() as second:
        outcome = await send([apprise_url(first), apprise_url(second, "form")], down_notification())
    assert outcome.delivered
    assert len(first.requests) == 1 and len(second.requests) == 1


async def test_a_failing_receiver_is_retryable_with_its_status() -> None:
    async with http_recorder(fail_first=1) as receiver:
        failed = await send([apprise_url(receiver)], down_notification())
        again = await send([apprise_url(receiver)], down_notification())
    assert not failed.delivered and failed.retryable and failed.status_code == 500
    assert failed.error is not None and failed.error.startswith("JSON: ")
    assert again.delivered


async def test_a_permanent_4xx_is_not_retried() -> None:
    async with http_recorder(status=404) as receiver:
        outcome = await send([apprise_url(receiver)], down_notification())
    assert not outcome.delivered and not outcome.retryable and outcome.status_code == 404


async def test_a_hanging_receiver_gives_up_within_the_timeout() -> None:
    async with http_recorder(hang=True) as receiver:
        outcome = await send([apprise_url(receiver)], down_notification(), alert_send_timeout_seconds=0.3)
    assert not outcome.delivered and outcome.retryable
    assert len(receiver.requests) == 1


async def test_connection_refused_is_retryable() -> None:
    outcome = await send([f"json://127.0.0.1:{free_port()}/"], down_notification())
    assert not outcome.delivered and outcome.retryable
    assert outcome.error is not None and "Connection error" in outcome.error


async def test_a_private_host_is_refused_before_apprise_sends() -> None:
    async with http_recorder() as receiver:
        outcome = await send([apprise_url(receiver)], down_notification(), alerts_allow_private_urls=False)
    assert outcome == SendOutcome(
        delivered=False,
        error="urls[0]: 127.0.0.1 is a private, loopback or reserved address",
        retryable=False,
    )
    assert receiver.requests == []


async def test_a_url_apprise_does_not_know_is_permanent() -> None:
    outcome = await send(["nosuchservice://token"], down_notification())
    assert outcome == SendOutcome(delivered=False, error="urls[0]: not a URL Apprise knows", retryable=False)
