"""EMAIL sender against a real aiosmtpd server on 127.0.0.1 (plain and STARTTLS with a trustme
certificate): the message parsed back, its parts, subject, headers and recipients; and failures."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import trustme

from control_plane.alerts.notification import Notification, SendOutcome
from control_plane.alerts.senders import SENDERS
from tests.alert_receivers import (
    channel_test_notification,
    down_notification,
    resolved_notification,
    sender_context,
    smtp_receiver,
)
from tests.processes import free_port

RECIPIENTS = {"recipients": ["ops@example.com", "oncall@example.com"]}


async def send_to(port: int, notification: Notification, **settings: Any) -> SendOutcome:
    options: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_from": "Traxo Alerts <alerts@traxo.example.com>",
        "smtp_timeout_seconds": 2,
    } | settings
    tls = options.pop("tls_context", None)
    async with sender_context(**options) as context:
        if tls is not None:
            context.extra["smtp_tls_context"] = tls
        return await SENDERS["EMAIL"](RECIPIENTS, notification, context)


def parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()), str(html.get_content())


async def test_a_down_mail_says_what_is_down() -> None:
    with smtp_receiver() as server:
        outcome = await send_to(server.port, down_notification())
    assert outcome.delivered and outcome.error is None
    [envelope] = server.envelopes
    assert envelope.mail_from == "alerts@traxo.example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    [message] = server.messages
    assert message["Subject"] == "[Traxo] DOWN: Production API — expected a 2xx status, got 503"
    assert message["From"] == "Traxo Alerts <alerts@traxo.example.com>"
    assert message["To"] == "ops@example.com, oncall@example.com"
    assert message["Message-ID"] == "<iev_0001@traxo.example.com>"
    assert message["X-Traxo-Event"] == "incident.opened"
    assert message["X-Traxo-Incident"] == "inc_1"
    assert message.get_content_type() == "multipart/alternative"
    plain, html = parts(message)
    for text in (plain, html):
        assert "Production API is down" in text
        assert "expected a 2xx status, got 503" in text
        assert "eu-west, us-east" in text
        assert "2026-03-02T09:00:00.000Z" in text
    assert '<a href="https://traxo.example.com/api/incidents/inc_1">' in html


async def test_a_recovery_mail_and_a_test_mail() -> None:
    with smtp_receiver() as server:
        assert (await send_to(server.port, resolved_notification())).delivered
        assert (await send_to(server.port, channel_test_notification())).delivered
    recovered, test = server.messages
    assert recovered["Subject"] == "[Traxo] RECOVERED: Production API after 3 minutes"
    plain, _ = parts(recovered)
    assert "Duration: 3 minutes" in plain and "Resolved: 2026-03-02T09:03:00.000Z" in plain
    assert test["Subject"] == "[Traxo] TEST: this channel works"
    assert test["X-Traxo-Event"] == "test" and test["X-Traxo-Incident"] is None


async def test_a_resend_is_the_same_message() -> None:
    with smtp_receiver() as server:
        await send_to(server.port, down_notification())
        await send_to(server.port, down_notification())
    first, second = server.messages
    assert first["Message-ID"] == second["Message-ID"]


async def test_starttls_with_a_trusted_certificate() -> None:
    server_tls, client_tls = tls_pair()
    with smtp_receiver(tls_context=server_tls) as server:
        refused = await send_to(server.port, down_notification(), smtp_security="none")
        outcome = await send_to(
            server.port, down_notification(), smtp_security="starttls", tls_context=client_tls
        )
    assert not refused.delivered and refused.status_code == 530  # STARTTLS required
    assert outcome.delivered
    assert len(server.messages) == 1


async def test_no_smtp_host_is_permanent() -> None:
    async with sender_context() as context:
        outcome = await SENDERS["EMAIL"](RECIPIENTS, down_notification(), context)
    assert outcome == SendOutcome(
        delivered=False, error="no SMTP server configured (TRAXO_SMTP_HOST)", retryable=False
    )


async def test_refused_recipients_are_permanent_and_a_busy_server_is_not() -> None:
    with smtp_receiver() as server:
        server.rcpt_reply = "550 5.1.1 no such user"
        refused = await send_to(server.port, down_notification())
        server.rcpt_reply = "451 4.3.0 try again later"
        busy = await send_to(server.port, down_notification())
    assert not refused.delivered and not refused.retryable and refused.status_code == 550
    assert refused.error is not None and "no such user" in refused.error
    assert not busy.delivered and busy.retryable and busy.status_code == 451
    assert server.envelopes == []


async def test_connection_refused_is_retryable() -> None:
    port = free_port()
    outcome = await send_to(port, down_notification())
    assert not outcome.delivered and outcome.retryable
    assert outcome.error == f"connection refused by 127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never greets: an SMTP server that hangs."""
    release = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_a_hanging_server_times_out() -> None:
    async with silent_server() as port:
        outcome = await send_to(port, down_notification(), smtp_timeout_seconds=0.3)
    assert not outcome.delivered and outcome.retryable
    assert outcome.error == "timed out after 0.3 s"


def tls_pair() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a trustme certificate for 127.0.0.1, and a client trusting it."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    return server_tls, client_tls


async def test_implicit_tls() -> None:
    server_tls, client_tls = tls_pair()
    with smtp_receiver(implicit_tls=server_tls) as server:
        outcome = await send_to(server.port, down_notification(), smtp_security="tls", tls_context=client_tls)
    assert outcome.delivered and len(server.messages) == 1


async def test_it_logs_in_and_a_wrong_password_is_permanent() -> None:
    server_tls, client_tls = tls_pair()
    with smtp_receiver(tls_context=server_tls, credentials=("traxo", "s3cret")) as server:
        ok = await send_to(
            server.port,
            down_notification(),
            smtp_security="starttls",
            tls_context=client_tls,
            smtp_username="traxo",
            smtp_password="s3cret",
        )
        wrong = await send_to(
            server.port,
            down_notification(),
            smtp_security="starttls",
            tls_context=client_tls,
            smtp_username="traxo",
            smtp_password="guess",
        )
    assert ok.delivered
    assert not wrong.delivered and not wrong.retryable and wrong.status_code == 535
    assert set(server.logins) == {"traxo"} and len(server.messages) == 1
