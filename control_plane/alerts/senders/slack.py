"""SLACK: an incoming webhook (config.webhookUrl) given Block Kit blocks and a plain `text`
fallback (what notifications and screen readers show)."""

from __future__ import annotations

import json
from typing import Any

from control_plane.alerts import render
from control_plane.alerts.notification import Notification, SendContext, SendOutcome
from control_plane.alerts.senders._http import json_headers, post


def slack_body(notification: Notification) -> dict[str, Any]:
    return {
        "text": render.headline(notification),
        "blocks": render.slack_blocks(notification),
        "unfurl_links": False,
    }


async def send(config: dict[str, Any], notification: Notification, context: SendContext) -> SendOutcome:
    body = json.dumps(slack_body(notification)).encode()
    return await post(context, str(config["webhookUrl"]), body=body, headers=json_headers())
