"""APPRISE: the notification to every URL of config.urls through the Apprise library (Telegram,
Discord, Teams, ntfy, Gotify, Pushover and the rest). Apprise makes its own HTTP requests, outside
the guarded session, so every host it would reach (channel_config.apprise_hosts: a self-hosted
service's, a mailto URL's SMTP server) is checked first with the guard's check_host (refused if it
is or resolves to a private address, unless allowed); see docs/alerts-senders.md for the limits."""

from __future__ import annotations

import re
from typing import Any

import apprise

from control_plane.alerts import render
from control_plane.alerts.channel_config import apprise_hosts
from control_plane.alerts.guard import check_host
from control_plane.alerts.notification import Notification, SendContext, SendOutcome
from control_plane.alerts.senders._http import RETRYABLE_4XX
from control_plane.core.errors import InvalidInput

_NOTIFY_TYPES = {
    "incident.opened": apprise.NotifyType.FAILURE,
    "incident.reminder": apprise.NotifyType.FAILURE,
    "incident.flapping": apprise.NotifyType.WARNING,
    "incident.resolved": apprise.NotifyType.SUCCESS,
}
# Apprise's plugins log an HTTP failure as "... error=503." — the only place the status shows.
_STATUS = re.compile(r"error=(\d{3})\b")
_PROBLEM_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})


async def refused_destination(urls: list[str], context: SendContext) -> str | None:
    """Why one of `urls` may not be sent to (one of the hosts Apprise would reach is forbidden), or None."""
    for index, url in enumerate(urls):
        for host in apprise_hosts(url):
            try:
                await check_host(host, context.settings, field=f"urls[{index}]")
            except InvalidInput as exc:
                return str(exc)
    return None


def _failure(result: Any) -> SendOutcome:
    errors: list[str] = []
    codes: list[int] = []
    timed_out = False
    for service in result:
        if service:
            continue
        timed_out |= service.status == apprise.AppriseResultStatus.TIMEOUT
        messages = [str(e.message) for e in service.logs() if e.level in _PROBLEM_LEVELS]
        codes += [int(code) for m in messages for code in _STATUS.findall(m)]
        errors.append(f"{service.name}: {messages[-1] if messages else service.status.name.lower()}")
    error = "; ".join(errors) or "Apprise sent nothing"
    if timed_out and not codes:
        error = f"timed out: {error}"
    permanent = bool(codes) and all(400 <= code < 500 and code not in RETRYABLE_4XX for code in codes)
    return SendOutcome(
        delivered=False,
        status_code=codes[-1] if codes else None,
        error=error[:300],
        retryable=not permanent,
    )


async def send(config: dict[str, Any], notification: Notification, context: SendContext) -> SendOutcome:
    urls = [str(url) for url in config["urls"]]
    refusal = await refused_destination(urls, context)
    if refusal is not None:
        return SendOutcome(delivered=False, error=refusal, retryable=False)
    timeout = context.settings.alert_send_timeout_seconds
    notifier = apprise.Apprise(asset=apprise.AppriseAsset(plugin_paths=[], storage_mode="memory"))
    for index, url in enumerate(urls):
        if not notifier.add(url):
            return SendOutcome(
                delivered=False, error=f"urls[{index}]: not a URL Apprise knows", retryable=False
            )
    for service in notifier:
        service.socket_connect_timeout = timeout
        service.socket_read_timeout = timeout
    result = await notifier.async_notify(
        body=render.plain_text(notification),
        title=render.headline(notification),
        notify_type=_NOTIFY_TYPES.get(notification.type, apprise.NotifyType.INFO),
        timeout=timeout,
    )
    if result:
        return SendOutcome(delivered=True)
    return _failure(result)
