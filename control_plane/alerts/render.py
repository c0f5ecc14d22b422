"""What each notification says, in one place so every channel tells the same story: the headline,
the email subject, plain text and HTML, Slack Block Kit blocks and the webhook's JSON event."""

from __future__ import annotations

import html
from typing import Any

from control_plane.alerts.notification import TEST, Notification
from control_plane.core.timefmt import iso

__all__ = [
    "details",
    "email_html",
    "email_subject",
    "format_duration",
    "headline",
    "plain_text",
    "slack_blocks",
    "webhook_payload",
]

_KIND_WORDS = {
    "DOWN": "is down",
    "NO_DATA": "is sending no data",
    "SSL_EXPIRY": "has a certificate about to expire",
    "DNS_CHANGE": "has changed DNS records",
}
_TAGS = {
    "incident.opened": "DOWN",
    "incident.resolved": "RECOVERED",
    "incident.flapping": "FLAPPING",
    "incident.updated": "UPDATE",
    "incident.acknowledged": "ACKNOWLEDGED",
    "incident.reminder": "STILL DOWN",
    TEST: "TEST",
}
_EMOJI = {
    "incident.opened": "🔴",
    "incident.resolved": "✅",
    "incident.flapping": "🟠",
    "incident.updated": "📝",
    "incident.acknowledged": "👀",
    "incident.reminder": "🔁",
    TEST: "🧪",
}


def format_duration(seconds: int | None) -> str:
    """`3 minutes`, `1 hour 5 minutes`, `45 seconds`: how long an incident lasted, in words."""
    if seconds is None:
        return "an unknown time"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return _plural(seconds, "second")
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return _plural(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return _plural(hours, "hour") + (f" {_plural(minutes, 'minute')}" if minutes else "")
    days, hours = divmod(hours, 24)
    return _plural(days, "day") + (f" {_plural(hours, 'hour')}" if hours else "")


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _monitor_name(notification: Notification) -> str:
    return notification.monitor.name if notification.monitor else "Traxo"


def headline(notification: Notification) -> str:
    """One line saying what happened: `Production API is down`, `… recovered after 3 minutes`."""
    name = _monitor_name(notification)
    incident = notification.incident
    kind_words = _KIND_WORDS.get(incident.kind, "has an incident") if incident else "is down"
    match notification.type:
        case "incident.opened":
            return f"{name} {kind_words}"
        case "incident.resolved":
            duration = incident.duration_seconds if incident else None
            return f"{name} recovered after {format_duration(duration)}"
        case "incident.flapping":
            return f"{name} is flapping (going down and up repeatedly)"
        case "incident.updated":
            return f"Update on {name}"
        case "incident.acknowledged":
            return f"{name}: incident acknowledged"
        case "incident.reminder":
            return f"{name} is still down"
        case _:
            return "Test notification from Traxo"


def email_subject(notification: Notification) -> str:
    """`[Traxo] DOWN: Production API — expected a 2xx status, got 503`."""
    tag = _TAGS.get(notification.type, notification.type.upper())
    name = _monitor_name(notification)
    incident = notification.incident
    if notification.type == TEST:
        return "[Traxo] TEST: this channel works"
    if notification.type == "incident.resolved":
        duration = incident.duration_seconds if incident else None
        return f"[Traxo] RECOVERED: {name} after {format_duration(duration)}"
    if incident and incident.kind != "DOWN" and notification.type == "incident.opened":
        tag = incident.kind.replace("_", " ")
    cause = incident.cause if incident else None
    return f"[Traxo] {tag}: {name}" + (f" — {cause}" if cause else "")


def details(notification: Notification) -> list[tuple[str, str]]:
    """The labelled facts every format shows: monitor, cause, regions, times, duration, link."""
    rows: list[tuple[str, str]] = []
    monitor, incident = notification.monitor, notification.incident
    if monitor:
        rows.append(("Monitor", monitor.name + (f" ({monitor.url})" if monitor.url else "")))
    if incident:
        if incident.cause:
            rows.append(("Cause", incident.cause))
        if incident.regions:
            rows.append(("Regions", ", ".join(incident.regions)))
        rows.append(("Started", iso(incident.started_at) or ""))
        if incident.resolved_at:
            rows.append(("Resolved", iso(incident.resolved_at) or ""))
            rows.append(("Duration", format_duration(incident.duration_seconds)))
        rows.append(("Incident", incident.id))
    if notification.message:
        rows.append(("Message", notification.message))
    if notification.link:
        rows.append(("Link", notification.link))
    return rows


def plain_text(notification: Notification) -> str:
    lines = [headline(notification), ""]
    lines += [f"{label}: {value}" for label, value in details(notification)]
    lines += ["", f"Sent at {iso(notification.occurred_at)} (notification {notification.id})."]
    return "\n".join(lines) + "\n"


def email_html(notification: Notification) -> str:
    esc = html.escape
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{esc(label)}</th>'
        f"<td>{_html_value(label, value)}</td></tr>"
        for label, value in details(notification)
    )
    return (
        '<!doctype html><html><body style="font-family:sans-serif">'
        f"<h2>{esc(_EMOJI.get(notification.type, ''))} {esc(headline(notification))}</h2>"
        f"<table>{rows}</table>"
        f'<p style="color:#666;font-size:12px">Sent at {esc(iso(notification.occurred_at) or "")}'
        f" (notification {esc(notification.id)}).</p></body></html>"
    )


def _html_value(label: str, value: str) -> str:
    if label == "Link":
        return f'<a href="{html.escape(value, quote=True)}">{html.escape(value)}</a>'
    return html.escape(value)


def slack_blocks(notification: Notification) -> list[dict[str, Any]]:
    """Block Kit: a header, a section of facts, a context line with the incident id."""
    title = f"{_EMOJI.get(notification.type, '')} {headline(notification)}".strip()
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}}
    ]
    facts = [(label, value) for label, value in details(notification) if label not in {"Incident", "Link"}]
    if facts:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{label}*\n{_slack_escape(value)}"[:2000]}
                    for label, value in facts[:10]
                ],
            }
        )
    context = [f"Notification {notification.id}"]
    if notification.incident:
        context.insert(0, f"Incident {notification.incident.id}")
    if notification.link:
        context.append(f"<{notification.link}|Open in Traxo>")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    return blocks


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_payload(notification: Notification) -> dict[str, Any]:
    """The JSON event a WEBHOOK channel receives (docs/alerts-senders.md shows an example)."""
    monitor, incident = notification.monitor, notification.incident
    return {
        "type": notification.type,
        "id": notification.id,
        "timestamp": iso(notification.occurred_at),
        "data": {
            "monitor": (
                {"id": monitor.id, "name": monitor.name, "url": monitor.url, "type": monitor.type}
                if monitor
                else None
            ),
            "incident": (
                {
                    "id": incident.id,
                    "kind": incident.kind,
                    "status": incident.status,
                    "cause": incident.cause,
                    "regions": list(incident.regions),
                    "startedAt": iso(incident.started_at),
                    "resolvedAt": iso(incident.resolved_at),
                    "durationSeconds": incident.duration_seconds,
                    "flapping": incident.flapping,
                }
                if incident
                else None
            ),
            "message": notification.message or headline(notification),
            "link": notification.link,
        },
    }
