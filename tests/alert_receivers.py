"""Local receivers for alert tests: an HTTP recorder (Slack, webhook, PagerDuty, Apprise) that can
fail its first N requests or hang, and an aiosmtpd SMTP server that keeps what it is sent."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email
import email.policy
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from control_plane.alerts.guard import outbound_session
from control_plane.alerts.notification import (
    TEST,
    IncidentInfo,
    MonitorInfo,
    Notification,
    SendContext,
)
from control_plane.settings import Settings
from tests.processes import free_port

__all__ = [
    "HttpRecorder",
    "RecordedRequest",
    "SmtpReceiver",
    "channel_test_notification",
    "down_notification",
    "http_recorder",
    "resolved_notification",
    "sender_context",
    "smtp_receiver",
]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpRecorder:
    """Answers `status` (with `reply` as its body) after failing the first `fail_first` requests
    with `fail_status`; with `hang` set, never answers at all. Every request is recorded."""

    status: int = 200
    reply: str = "ok"
    fail_first: int = 0
    fail_status: int = 500
    fail_reply: str = "receiver is failing on purpose"
    hang: bool = False
    reply_headers: dict[str, str] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)  # lets hanging requests end
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(RecordedRequest(request.method, request.path_qs, dict(request.headers), body))
        self.arrived.set()
        if self.hang:
            await self.released.wait()
        if len(self.requests) <= self.fail_first:
            return web.Response(status=self.fail_status, text=self.fail_reply)
        return web.Response(status=self.status, text=self.reply, headers=self.reply_headers)


@contextlib.asynccontextmanager
async def http_recorder(**options: Any) -> AsyncIterator[HttpRecorder]:
    recorder = HttpRecorder(**options)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    recorder.port = server.sockets[0].getsockname()[1]
    try:
        yield recorder
    finally:
        recorder.released.set()
        await runner.cleanup()


@dataclass
class SmtpReceiver:
    """What an aiosmtpd server on 127.0.0.1 received: envelopes and their parsed messages."""

    hostname: str = "127.0.0.1"
    port: int = 0
    envelopes: list[Envelope] = field(default_factory=list)
    # An answer to every RCPT TO instead of accepting it ("550 5.1.1 no such user").
    rcpt_reply: str | None = None
    logins: list[str] = field(default_factory=list)  # the user names that tried AUTH

    @property
    def messages(self) -> list[EmailMessage]:
        parsed = []
        for envelope in self.envelopes:
            raw = envelope.original_content or envelope.content
            assert isinstance(raw, bytes)
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def smtp_receiver(
    tls_context: ssl.SSLContext | None = None,
    *,
    implicit_tls: ssl.SSLContext | None = None,
    credentials: tuple[str, str] | None = None,
) -> Iterator[SmtpReceiver]:
    """An SMTP server on a free port. With `tls_context` it offers STARTTLS and requires it; with
    `implicit_tls` it speaks TLS from the first byte; with `credentials` it requires AUTH."""
    receiver = SmtpReceiver()
    kwargs: dict[str, Any] = {}
    if tls_context is not None:
        kwargs |= {"tls_context": tls_context, "require_starttls": True}
    if implicit_tls is not None:
        kwargs["ssl_context"] = implicit_tls
    if credentials is not None:
        kwargs |= {
            "authenticator": _Authenticator(receiver, credentials),
            "auth_required": True,
            "auth_require_tls": tls_context is not None or implicit_tls is not None,
        }
    # aiosmtpd's start() connects to its own port to check it is up, so it needs a real one.
    receiver.port = free_port()
    controller = Controller(receiver, hostname="127.0.0.1", port=receiver.port, **kwargs)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()


@dataclass
class _Authenticator:
    receiver: SmtpReceiver
    credentials: tuple[str, str]

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login = (auth_data.login.decode(), auth_data.password.decode())
        self.receiver.logins.append(login[0])
        # handled=False: aiosmtpd itself answers (235, or 535 on a wrong password).
        return AuthResult(success=login == self.credentials, handled=False)


@contextlib.asynccontextmanager
async def sender_context(**settings: Any) -> AsyncIterator[SendContext]:
    """A SendContext whose session is the guard's, allowed to reach loopback unless told otherwise
    (`alerts_allow_private_urls=False`); `alert_send_timeout_seconds` defaults to 2 s."""
    options: dict[str, Any] = {
        "database_url": "sqlite+aiosqlite://",
        "redis_url": None,
        "alerts_allow_private_urls": True,
        "alert_send_timeout_seconds": 2,
    }
    options.update(settings)
    config = Settings(**options)
    async with outbound_session(config) as http:
        yield SendContext(settings=config, http=http)


def down_notification(**overrides: Any) -> Notification:
    """An incident.opened for `Production API` in two regions (override any Notification field)."""
    started = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    fields: dict[str, Any] = {
        "id": "iev_0001",
        "type": "incident.opened",
        "occurred_at": started,
        "org_id": "org_1",
        "monitor": MonitorInfo("mon_1", "Production API", "https://api.example.com/health", "HTTP"),
        "incident": IncidentInfo(
            id="inc_1",
            kind="DOWN",
            cause="expected a 2xx status, got 503",
            regions=("eu-west", "us-east"),
            started_at=started,
            resolved_at=None,
            duration_seconds=None,
            status="OPEN",
            flapping=False,
        ),
        "message": None,
        "link": "https://traxo.example.com/api/incidents/inc_1",
    }
    fields.update(overrides)
    return Notification(**fields)


def resolved_notification(**overrides: Any) -> Notification:
    """The incident of down_notification(), resolved after 3 minutes."""
    opened = down_notification()
    assert opened.incident is not None
    resolved_at = opened.incident.started_at + timedelta(minutes=3)
    incident = dataclasses.replace(
        opened.incident,
        resolved_at=resolved_at,
        duration_seconds=180,
        status="RESOLVED",
    )
    fields: dict[str, Any] = {
        "id": "iev_0002",
        "type": "incident.resolved",
        "occurred_at": resolved_at,
        "incident": incident,
    }
    fields.update(overrides)
    return dataclasses.replace(opened, **fields)


def channel_test_notification(**overrides: Any) -> Notification:
    fields: dict[str, Any] = {
        "id": "test_0001",
        "type": TEST,
        "occurred_at": datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        "org_id": "org_1",
        "monitor": None,
        "incident": None,
        "message": "This is a test notification from Traxo.",
    }
    fields.update(overrides)
    return Notification(**fields)
