"""Shared by the subscribers' tests (their fixtures are in conftest.py): the settings of a server
that mails through an aiosmtpd server on 127.0.0.1, and subscribing and confirming as a visitor."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

import httpx

from control_plane.settings import Settings
from tests.alert_receivers import SmtpReceiver

PUBLIC_URL = "https://status.traxo.example.com"
_CONFIRM_LINK = re.compile(r"https://\S+/subscribe/confirm\?token=(\S+)")
_UNSUBSCRIBE_LINK = re.compile(r"https://\S+/unsubscribe\?token=(\S+)")


def mail_settings(database_url: str, port: int) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=None,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_from="Traxo <status@traxo.example.com>",
        smtp_timeout_seconds=2,
        public_url=PUBLIC_URL,
    )


def client_of(app: Any, address: str = "198.51.100.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://traxo.test")


def body_of(message: EmailMessage) -> str:
    return str(message.get_content())


def confirm_token(message: EmailMessage) -> str:
    found = _CONFIRM_LINK.search(body_of(message))
    assert found, body_of(message)
    return found.group(1)


def unsubscribe_token(message: EmailMessage) -> str:
    found = _UNSUBSCRIBE_LINK.search(str(message["List-Unsubscribe"]))
    assert found, message["List-Unsubscribe"]
    return found.group(1).rstrip(">")


def mails_to(smtp: SmtpReceiver, address: str) -> list[EmailMessage]:
    return [message for message in smtp.messages if message["To"] == address]


async def subscribe(
    client: httpx.AsyncClient, smtp: SmtpReceiver, email: str, slug: str = "acme-status", **fields: Any
) -> str:
    """Subscribes and confirms by the mailed link; the confirmation token."""
    response = await client.post(f"/status/{slug}/subscribe", json={"email": email, **fields})
    assert response.status_code == 202, response.text
    token = confirm_token(mails_to(smtp, email)[-1])
    confirmed = await client.get(f"/status/{slug}/subscribe/confirm", params={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    return token
