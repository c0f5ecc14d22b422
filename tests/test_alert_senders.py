"""The sender registry and what render.py says for each event: one sender per channel type, and the
words every channel shares (headline, subject, durations). Each sender has its own test file."""

from __future__ import annotations

import dataclasses

import pytest

from control_plane.alerts import render
from control_plane.alerts.senders import SENDERS
from tests.alert_receivers import channel_test_notification, down_notification, resolved_notification


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
