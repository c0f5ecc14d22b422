"""The sender registry and what render.py says for each event: one sender per channel type, and the
words every channel shares (headline, subject, durations). Each sender has its own test file."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from control_plane.alerts import render
from control_plane.alerts.notification import SendOutcome
from control_plane.alerts.senders import SENDERS
from tests.alert_receivers import (
    channel_test_notification,
    down_notification,
    http_recorder,
    resolved_notification,
    sender_context,
)
from tests.processes import free_port


def test_there_is_a_sender_for_every_channel_type() -> None:
    assert set(SENDERS) == {"EMAIL", "SLACK", "WEBHOOK", "PAGERDUTY", "APPRISE"}


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (59, "59 seconds"),
        (180, "3 minutes"),
        (3600, "1 hour"),
        (3900, "1 hour 5 minutes"),
        (2 * 86400 + 3600, "2 days 1 hour"),
        (None, "an unknown time"),
    ],
)
def test_durations_read_as_words(seconds: int | None, words: str) -> None:
    assert render.format_duration(seconds) == words


def test_subjects_say_what_happened() -> None:
    opened = down_notification()
    assert opened.incident is not None
    ssl = dataclasses.replace(
        opened,
        incident=dataclasses.replace(opened.incident, kind="SSL_EXPIRY", cause="expires in 5 days"),
    )
    subjects = [
        render.email_subject(n)
        for n in (
            opened,
            resolved_notification(),
            dataclasses.replace(opened, type="incident.reminder"),
            dataclasses.replace(opened, type="incident.flapping"),
            dataclasses.replace(opened, type="incident.acknowledged"),
            ssl,
            channel_test_notification(),
        )
    ]
    assert subjects == [
        "[Traxo] DOWN: Production API — expected a 2xx status, got 503",
        "[Traxo] RECOVERED: Production API after 3 minutes",
        "[Traxo] STILL DOWN: Production API — expected a 2xx status, got 503",
        "[Traxo] FLAPPING: Production API — expected a 2xx status, got 503",
        "[Traxo] ACKNOWLEDGED: Production API — expected a 2xx status, got 503",
        "[Traxo] SSL EXPIRY: Production API — expires in 5 days",
        "[Traxo] TEST: this channel works",
    ]


def test_every_text_names_monitor_cause_regions_times_and_duration() -> None:
    text = render.plain_text(resolved_notification())
    assert text.splitlines()[0] == "Production API recovered after 3 minutes"
    for fact in (
        "Monitor: Production API (https://api.example.com/health)",
        "Cause: expected a 2xx status, got 503",
        "Regions: eu-west, us-east",
        "Started: 2026-03-02T09:00:00.000Z",
        "Resolved: 2026-03-02T09:03:00.000Z",
        "Duration: 3 minutes",
        "Incident: inc_1",
    ):
        assert fact in text


def test_html_escapes_what_it_is_given() -> None:
    opened = down_notification()
    assert opened.incident is not None
    hostile = dataclasses.replace(
        opened, incident=dataclasses.replace(opened.incident, cause="<script>alert(1)</script>")
    )
    html = render.email_html(hostile)
    assert "<script>" not in html and "&lt;script&gt;" in html


HTTP_SENDERS = ["WEBHOOK", "SLACK", "PAGERDUTY"]


def http_config(channel_type: str, url: str) -> dict[str, Any]:
    return {"WEBHOOK": {"url": url}, "SLACK": {"webhookUrl": url}}.get(channel_type, {"routingKey": "R" * 32})


async def send_over_http(channel_type: str, url: str, **settings: Any) -> SendOutcome:
    async with sender_context(pagerduty_events_url=url, **settings) as context:
        return await SENDERS[channel_type](http_config(channel_type, url), down_notification(), context)


@pytest.mark.parametrize("channel_type", HTTP_SENDERS)
async def test_http_senders_deliver_and_retry_a_5xx(channel_type: str) -> None:
    async with http_recorder(fail_first=1, status=202) as receiver:
        failed = await send_over_http(channel_type, receiver.url)
        delivered = await send_over_http(channel_type, receiver.url)
    assert (failed.delivered, failed.retryable, failed.status_code) == (False, True, 500)
    assert failed.error == "HTTP 500 from 127.0.0.1: receiver is failing on purpose"
    assert delivered.delivered and delivered.status_code == 202
    assert receiver.requests[0].body == receiver.requests[1].body  # a retry sends the same event


@pytest.mark.parametrize("channel_type", HTTP_SENDERS)
async def test_http_senders_give_up_on_a_permanent_4xx(channel_type: str) -> None:
    async with http_recorder(status=403, reply="invalid_token") as receiver:
        outcome = await send_over_http(channel_type, receiver.url)
    assert (outcome.delivered, outcome.retryable, outcome.status_code) == (False, False, 403)
    assert outcome.error == "HTTP 403 from 127.0.0.1: invalid_token"


@pytest.mark.parametrize("channel_type", HTTP_SENDERS)
async def test_http_senders_time_out_on_a_hanging_receiver(channel_type: str) -> None:
    async with http_recorder(hang=True) as receiver:
        outcome = await send_over_http(channel_type, receiver.url, alert_send_timeout_seconds=0.2)
    assert (outcome.delivered, outcome.retryable) == (False, True)
    assert outcome.error == "timed out after 0.2 s"


@pytest.mark.parametrize("channel_type", HTTP_SENDERS)
async def test_http_senders_retry_a_refused_connection(channel_type: str) -> None:
    outcome = await send_over_http(channel_type, f"http://127.0.0.1:{free_port()}/")
    assert (outcome.delivered, outcome.retryable) == (False, True)
    assert outcome.error == "connection refused by 127.0.0.1"


@pytest.mark.parametrize("channel_type", HTTP_SENDERS)
async def test_http_senders_never_reach_a_private_address_unless_allowed(channel_type: str) -> None:
    async with http_recorder() as receiver:
        outcome = await send_over_http(channel_type, receiver.url, alerts_allow_private_urls=False)
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert outcome.error is not None and outcome.error.startswith("refused: 127.0.0.1")
    assert receiver.requests == []


@pytest.mark.parametrize("channel_type", HTTP_SENDERS)
async def test_http_senders_do_not_follow_redirects(channel_type: str) -> None:
    async with http_recorder() as target:
        moved = {"Location": target.url + "/elsewhere"}
        async with http_recorder(status=308, reply="", reply_headers=moved) as receiver:
            outcome = await send_over_http(channel_type, receiver.url)
    assert (outcome.delivered, outcome.retryable, outcome.status_code) == (False, False, 308)
    assert outcome.error == (
        f"HTTP 308 from 127.0.0.1: redirects are not followed (Location: {target.url}/elsewhere)"
    )
    assert len(receiver.requests) == 1 and target.requests == []
