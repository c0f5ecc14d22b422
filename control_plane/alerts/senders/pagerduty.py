"""PAGERDUTY: Events API v2 (settings.pagerduty_events_url). The incident's id is the dedup_key,
so every event of one incident lands on one PagerDuty alert:

- incident.opened, incident.reminder, incident.flapping → trigger (a repeat trigger for an open
  alert is deduplicated by PagerDuty and logged on it);
- incident.resolved → resolve; incident.acknowledged → acknowledge;
- incident.updated → nothing is sent (a trigger would only repeat the alert): delivered, a no-op;
- test → a trigger and a resolve whose dedup_key is the test's id, so no alert stays open.
"""

from __future__ import annotations

import json
from typing import Any

from control_plane.alerts import render
from control_plane.alerts.notification import TEST, Notification, SendContext, SendOutcome
from control_plane.alerts.senders._http import json_headers, post
from control_plane.core.timefmt import iso

ACTIONS = {
    "incident.opened": "trigger",
    "incident.reminder": "trigger",
    "incident.flapping": "trigger",
    "incident.resolved": "resolve",
    "incident.acknowledged": "acknowledge",
}
SEVERITY = {"DOWN": "critical", "NO_DATA": "critical", "SSL_EXPIRY": "warning", "DNS_CHANGE": "warning"}
SUMMARY_LIMIT = 1024


def summary(notification: Notification) -> str:
    incident = notification.incident
    if notification.type == TEST:
        return "Test notification from Traxo: this PagerDuty integration works"
    name = notification.monitor.name if notification.monitor else "Traxo"
    if incident is not None and incident.kind == "DOWN" and notification.type != "incident.flapping":
        text = f"{name} is down" + (f": {incident.cause}" if incident.cause else "")
    else:
        text = render.headline(notification)
        if incident is not None and incident.cause:
            text += f": {incident.cause}"
    return text[:SUMMARY_LIMIT]


def event(notification: Notification, routing_key: str, action: str, dedup_key: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
        "client": "Traxo",
    }
    if notification.link:
        body["client_url"] = notification.link
        body["links"] = [{"href": notification.link, "text": "Incident in Traxo"}]
    if action != "trigger":
        return body
    monitor, incident = notification.monitor, notification.incident
    details: dict[str, Any] = {"event": notification.type, "notification": notification.id}
    if incident is not None:
        details |= {
            "incident": incident.id,
            "kind": incident.kind,
            "cause": incident.cause,
            "regions": list(incident.regions),
            "startedAt": iso(incident.started_at),
        }
    if notification.message:
        details["message"] = notification.message
    body["payload"] = {
        "summary": summary(notification),
        "source": (monitor.url or monitor.name) if monitor else "Traxo",
        "severity": SEVERITY.get(incident.kind, "error") if incident else "info",
        "timestamp": iso(notification.occurred_at),
        "component": monitor.name if monitor else None,
        "class": incident.kind if incident else "test",
        "custom_details": details,
    }
    return body


async def _post_event(context: SendContext, payload: dict[str, Any]) -> SendOutcome:
    body = json.dumps(payload).encode()
    url = context.settings.pagerduty_events_url
    return await post(context, url, body=body, headers=json_headers())


async def send(config: dict[str, Any], notification: Notification, context: SendContext) -> SendOutcome:
    routing_key = str(config["routingKey"])
    if notification.type == TEST:
        triggered = await _post_event(context, event(notification, routing_key, "trigger", notification.id))
        if not triggered.delivered:
            return triggered
        return await _post_event(context, event(notification, routing_key, "resolve", notification.id))
    action = ACTIONS.get(notification.type)
    if action is None:  # incident.updated: nothing PagerDuty would do with it
        return SendOutcome(delivered=True)
    dedup_key = notification.incident.id if notification.incident else notification.id
    return await _post_event(context, event(notification, routing_key, action, dedup_key))
