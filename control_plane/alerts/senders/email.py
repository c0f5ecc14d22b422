"""EMAIL: one multipart/alternative message (plain text and HTML) to the channel's recipients
through the SMTP server of settings.smtp_* (aiosmtplib). The Message-ID comes from the
notification's id, so a resend after a lost answer is the same message; References name the
incident, so a mail client threads its down, update and recovery mails together."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import aiosmtplib

from control_plane.alerts import render
from control_plane.alerts.notification import Notification, SendContext, SendOutcome
from control_plane.alerts.senders._http import send_time
from control_plane.settings import Settings

NO_SERVER = "no SMTP server configured (TRAXO_SMTP_HOST)"


def _domain(address: str) -> str:
    _, addr = parseaddr(address)
    return addr.rpartition("@")[2] or "traxo.local"


def build_message(
    notification: Notification, recipients: list[str], sender: str, context: SendContext
) -> EmailMessage:
    domain = _domain(sender)
    message = EmailMessage()
    message["Subject"] = render.email_subject(notification)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(send_time(context))
    message["Message-ID"] = f"<{notification.id}@{domain}>"
    message["X-Traxo-Event"] = notification.type
    if notification.incident is not None:
        message["X-Traxo-Incident"] = notification.incident.id
        message["References"] = f"<{notification.incident.id}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render.plain_text(notification))
    message.add_alternative(render.email_html(notification), subtype="html")
    return message


def _failure(exc: Exception, where: str, timeout: float) -> SendOutcome:
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return SendOutcome(delivered=False, error=f"timed out after {timeout:g} s")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        refused = ", ".join(f"{r.recipient} ({r.code} {r.message})" for r in exc.recipients)
        return SendOutcome(
            delivered=False,
            status_code=codes[0] if codes else None,
            error=f"{where} refused the recipients: {refused}"[:300],
            retryable=not codes or any(400 <= code < 500 for code in codes),
        )
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        if isinstance(exc.__cause__, ConnectionRefusedError) or "refused" in str(exc).lower():
            return SendOutcome(delivered=False, error=f"connection refused by {where}")
        return SendOutcome(delivered=False, error=f"could not connect to {where}: {exc}"[:300])
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return SendOutcome(
            delivered=False,
            status_code=exc.code,
            error=f"SMTP {exc.code} from {where}: {exc.message}"[:300],
            retryable=not 500 <= exc.code < 600,
        )
    if isinstance(exc, ssl.SSLError):
        return SendOutcome(delivered=False, error=f"TLS with {where} failed: {exc}"[:300])
    return SendOutcome(delivered=False, error=f"{type(exc).__name__} from {where}: {exc}"[:300])


async def send(config: dict[str, Any], notification: Notification, context: SendContext) -> SendOutcome:
    settings = context.settings
    if not settings.smtp_host:
        return SendOutcome(delivered=False, error=NO_SERVER, retryable=False)
    recipients = [str(r) for r in config["recipients"]]
    message = build_message(notification, recipients, settings.smtp_from, context)
    tls_context = context.extra.get("smtp_tls_context")  # a CA of one's own (tests, self-hosters)
    return await send_message(
        settings, message, recipients, tls_context if isinstance(tls_context, ssl.SSLContext) else None
    )


async def send_message(
    settings: Settings,
    message: EmailMessage,
    recipients: list[str],
    tls_context: ssl.SSLContext | None = None,
) -> SendOutcome:
    """`message` to `recipients` through the SMTP server of settings.smtp_* (its host, port,
    security and login): how EMAIL channels send, for any other mail Traxo sends (budgets)."""
    if not settings.smtp_host:
        return SendOutcome(delivered=False, error=NO_SERVER, retryable=False)
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        await aiosmtplib.send(
            message,
            sender=parseaddr(settings.smtp_from)[1] or settings.smtp_from,
            recipients=recipients,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=settings.smtp_password or None,
            use_tls=settings.smtp_security == "tls",
            start_tls=settings.smtp_security == "starttls",
            tls_context=tls_context,
            timeout=settings.smtp_timeout_seconds,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return _failure(exc, where, settings.smtp_timeout_seconds)
    return SendOutcome(delivered=True, status_code=250)
