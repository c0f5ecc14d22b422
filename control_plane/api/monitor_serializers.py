"""Monitor responses built from rows: the shapes that monitor_responses.py declares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from control_plane.api import incident_schemas
from control_plane.api.incident_schemas import MonitorIncidentOut
from control_plane.api.monitor_responses import (
    CheckOut,
    LastCheckOut,
    MonitorCheckOut,
    MonitorDetailOut,
    MonitorOut,
    MonitorSummaryOut,
    MonitorUpdatedOut,
)
from control_plane.api.responses import iso_at
from control_plane.models import CheckResult, Monitor
from control_plane.services.incidents import IncidentRow


def _heartbeat_url(public_url: str, heartbeat_token: str) -> str:
    return f"{public_url}/api/heartbeat/{heartbeat_token}"


def _ingest_url(public_url: str, monitor_id: str) -> str:
    return f"{public_url}/api/ai/ingest/{monitor_id}"


def _add_passive_urls(
    view: MonitorSummaryOut | MonitorOut | MonitorUpdatedOut | MonitorDetailOut,
    monitor: Monitor,
    public_url: str,
) -> None:
    if monitor.type == "HEARTBEAT" and monitor.heartbeat_token:
        view["heartbeatUrl"] = _heartbeat_url(public_url, monitor.heartbeat_token)
    elif monitor.type == "LLM":
        view["ingestUrl"] = _ingest_url(public_url, monitor.id)


def _response_time(value: float | None) -> int | None:
    return None if value is None else round(value)


def monitor_list_items(rows: Sequence[Sequence[Any]], public_url: str) -> list[MonitorSummaryOut]:
    """The list's items from `monitors.list_monitors` rows (the same shape as the other monitor views).

    Written for 1,000+ rows per request: one pass, no ORM objects, each distinct `regions` text
    decoded once.
    """
    regions_by_text: dict[str, list[str]] = {}
    items = []
    for (
        monitor_id,
        name,
        url,
        monitor_type,
        interval,
        is_active,
        method,
        timeout,
        regions_text,
        created_at,
        last_status,
        last_response_time,
        last_checked_at,
        heartbeat_token,
    ) in rows:
        regions = regions_by_text.get(regions_text)
        if regions is None:
            regions = regions_by_text[regions_text] = orjson.loads(regions_text)
        last_check: LastCheckOut | None = (
            None
            if last_checked_at is None
            else {
                "status": last_status,
                "responseTime": _response_time(last_response_time),
                "checkedAt": iso_at(last_checked_at),
            }
        )
        item: MonitorSummaryOut = {
            "id": monitor_id,
            "name": name,
            "url": url,
            "type": monitor_type,
            "interval": interval,
            "isActive": is_active,
            "method": method,
            "timeout": timeout,
            "regions": regions,
            "createdAt": iso_at(created_at),
            "lastCheck": last_check,
        }
        if monitor_type == "HEARTBEAT" and heartbeat_token:
            item["heartbeatUrl"] = _heartbeat_url(public_url, heartbeat_token)
        elif monitor_type == "LLM":
            item["ingestUrl"] = _ingest_url(public_url, monitor_id)
        items.append(item)
    return items


def monitor_out(monitor: Monitor, public_url: str) -> MonitorOut:
    """The full monitor, as create, pause and resume answer it."""
    view: MonitorOut = {
        "id": monitor.id,
        "name": monitor.name,
        "url": monitor.url,
        "type": monitor.type,
        "interval": monitor.interval,
        "isActive": monitor.is_active,
        "method": monitor.method,
        "expectedStatus": monitor.expected_status,
        "expectedKeyword": monitor.expected_keyword,
        "timeout": monitor.timeout,
        "regions": monitor.regions,
        "config": monitor.config,
        "alertChannelIds": monitor.alert_channel_ids,
        "orgId": monitor.org_id,
        "createdAt": iso_at(monitor.created_at),
        "updatedAt": iso_at(monitor.updated_at),
    }
    _add_passive_urls(view, monitor, public_url)
    return view


def monitor_updated_out(monitor: Monitor, public_url: str) -> MonitorUpdatedOut:
    view: MonitorUpdatedOut = {
        "id": monitor.id,
        "name": monitor.name,
        "url": monitor.url,
        "type": monitor.type,
        "interval": monitor.interval,
        "isActive": monitor.is_active,
        "method": monitor.method,
        "timeout": monitor.timeout,
        "regions": monitor.regions,
        "config": monitor.config,
        "alertChannelIds": monitor.alert_channel_ids,
        "createdAt": iso_at(monitor.created_at),
        "updatedAt": iso_at(monitor.updated_at),
    }
    _add_passive_urls(view, monitor, public_url)
    return view


def monitor_detail_out(
    monitor: Monitor, checks: Sequence[CheckResult], incidents: Sequence[IncidentRow], public_url: str
) -> MonitorDetailOut:
    view: MonitorDetailOut = {
        "id": monitor.id,
        "name": monitor.name,
        "url": monitor.url,
        "type": monitor.type,
        "interval": monitor.interval,
        "isActive": monitor.is_active,
        "method": monitor.method,
        "expectedStatus": monitor.expected_status,
        "expectedKeyword": monitor.expected_keyword,
        "timeout": monitor.timeout,
        "regions": monitor.regions,
        "config": monitor.config,
        "alertChannelIds": monitor.alert_channel_ids,
        "createdAt": iso_at(monitor.created_at),
        "checks": [_monitor_check_out(check) for check in checks],
        "incidents": [incident_schemas.incident_summary_out(row) for row in incidents],
    }
    _add_passive_urls(view, monitor, public_url)
    return view


def _monitor_check_out(check: CheckResult) -> MonitorCheckOut:
    """A check as the reference shows it, and why it failed or warned (`error`, `errorKind`)."""
    return {
        "id": check.id,
        "status": check.status,
        "responseTime": _response_time(check.response_time),
        "statusCode": check.status_code,
        "region": check.region,
        "checkedAt": iso_at(check.checked_at),
        "error": check.error_message,
        "errorKind": check.error_kind,
    }


def check_out(check: CheckResult) -> CheckOut:
    return {
        "id": check.id,
        "monitorId": check.monitor_id,  # the reference's order: after the id
        "status": check.status,
        "responseTime": _response_time(check.response_time),
        "statusCode": check.status_code,
        "region": check.region,
        "checkedAt": iso_at(check.checked_at),
        "error": check.error_message,
        "errorKind": check.error_kind,
    }


def monitor_incident_out(row: IncidentRow, monitor: Monitor) -> MonitorIncidentOut:
    """An incident of `monitor` (the row has its name too; the signature is the routes')."""
    return incident_schemas.monitor_incident_out(row)
