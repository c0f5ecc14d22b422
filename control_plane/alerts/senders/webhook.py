"""WEBHOOK: the JSON event POSTed to the channel's URL, signed per the Standard Webhooks spec
(webhook-id, webhook-timestamp, webhook-signature `v1,<base64 HMAC-SHA256 of id.timestamp.body>`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from control_plane.alerts import render
from control_plane.alerts.notification import Notification, SendContext, SendOutcome
from control_plane.alerts.senders._http import json_headers, post, send_time

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after `whsec_`. A secret that is not
    base64 is used as its UTF-8 bytes, as the standardwebhooks library cannot verify it anyway."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return text.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str | None, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    headers = {"webhook-id": message_id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers["webhook-signature"] = sign(secret, message_id, timestamp, body)
    return headers


async def send(config: dict[str, Any], notification: Notification, context: SendContext) -> SendOutcome:
    body = json.dumps(render.webhook_payload(notification), separators=(",", ":")).encode()
    timestamp = int(send_time(context).timestamp())
    headers = json_headers(signed_headers(config.get("secret"), notification.id, timestamp, body))
    return await post(context, str(config["url"]), body=body, headers=headers)
