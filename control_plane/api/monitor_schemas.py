"""Monitor request bodies and response shapes (the reference's, field for field, plus `config`
and, for passive types, the URL their traffic goes to)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import Field, StringConstraints, field_validator

from control_plane.api.schemas import Name, NoControlCharacters, RequestModel
from control_plane.models import CheckResult, Incident, Monitor
from control_plane.monitor_config import HTTP_METHODS, MONITOR_TYPES
from control_plane.services.monitors import MAX_INTERVAL
from control_plane.timefmt import iso

MonitorType = Literal[MONITOR_TYPES]  # type: ignore[valid-type]
HttpMethod = Literal[HTTP_METHODS]  # type: ignore[valid-type]
Region = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# A URL, host or address as the type reads it (monitor_targets checks it against the type).
Target = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048), NoControlCharacters]


class _MonitorFields(RequestModel):
    nullable: ClassVar[frozenset[str]] = frozenset({"url", "expectedStatus", "expectedKeyword", "config"})

    url: Target | None = None
    interval: Annotated[int, Field(ge=1, le=MAX_INTERVAL)] | None = None
    method: HttpMethod | None = None
    expectedStatus: Annotated[int, Field(ge=100, le=599)] | None = None
    expectedKeyword: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    timeout: Annotated[int, Field(ge=1, le=60)] | None = None
    regions: Annotated[list[Region], Field(min_length=1, max_length=20)] | None = None
    config: dict[str, Any] | None = None

    @field_validator("regions")
    @classmethod
    def _unique(cls, regions: list[str] | None) -> list[str] | None:
        if regions is not None and len(set(regions)) != len(regions):
            raise ValueError("must not repeat a region")
        return regions


class MonitorCreate(_MonitorFields):
    name: Name
    type: MonitorType


class MonitorUpdate(_MonitorFields):
    name: Name | None = None
    type: MonitorType | None = None


def _passive_urls(monitor: Monitor, public_url: str) -> dict[str, Any]:
    return _passive_urls_of(monitor.type, monitor.id, monitor.heartbeat_token, public_url)


def _passive_urls_of(
    monitor_type: str, monitor_id: str, heartbeat_token: str | None, public_url: str
) -> dict[str, Any]:
    if monitor_type == "HEARTBEAT" and heartbeat_token:
        return {"heartbeatUrl": f"{public_url}/api/heartbeat/{heartbeat_token}"}
    if monitor_type == "LLM":
        return {"ingestUrl": f"{public_url}/api/ai/ingest/{monitor_id}"}
    return {}


def _base(monitor: Monitor) -> dict[str, Any]:
    return {
        "id": monitor.id,
        "name": monitor.name,
        "url": monitor.url,
        "type": monitor.type,
        "interval": monitor.interval,
        "isActive": monitor.is_active,
        "method": monitor.method,
    }


def _response_time(value: float | None) -> int | None:
    return None if value is None else round(value)


def monitor_list_items(rows: Sequence[Sequence[Any]], public_url: str) -> list[dict[str, Any]]:
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
        item = {
            "id": monitor_id,
            "name": name,
            "url": url,
            "type": monitor_type,
            "interval": interval,
            "isActive": is_active,
            "method": method,
            "timeout": timeout,
            "regions": regions,
            "createdAt": iso(created_at),
            "lastCheck": None
            if last_checked_at is None
            else {
                "status": last_status,
                "responseTime": _response_time(last_response_time),
                "checkedAt": iso(last_checked_at),
            },
        }
        item.update(_passive_urls_of(monitor_type, monitor_id, heartbeat_token, public_url))
        items.append(item)
    return items


def monitor_out(monitor: Monitor, public_url: str) -> dict[str, Any]:
    """The full monitor, as create, pause and resume answer it."""
    return {
        **_base(monitor),
        "expectedStatus": monitor.expected_status,
        "expectedKeyword": monitor.expected_keyword,
        "timeout": monitor.timeout,
        "regions": monitor.regions,
        "config": monitor.config,
        "orgId": monitor.org_id,
        "createdAt": iso(monitor.created_at),
        "updatedAt": iso(monitor.updated_at),
        **_passive_urls(monitor, public_url),
    }


def monitor_updated_out(monitor: Monitor, public_url: str) -> dict[str, Any]:
    return {
        **_base(monitor),
        "timeout": monitor.timeout,
        "regions": monitor.regions,
        "config": monitor.config,
        "createdAt": iso(monitor.created_at),
        "updatedAt": iso(monitor.updated_at),
        **_passive_urls(monitor, public_url),
    }


def monitor_detail_out(
    monitor: Monitor, checks: list[CheckResult], incidents: list[Incident], public_url: str
) -> dict[str, Any]:
    return {
        **_base(monitor),
        "expectedStatus": monitor.expected_status,
        "expectedKeyword": monitor.expected_keyword,
        "timeout": monitor.timeout,
        "regions": monitor.regions,
        "config": monitor.config,
        "createdAt": iso(monitor.created_at),
        "checks": [_check_fields(check) for check in checks],
        "incidents": [
            {
                "id": incident.id,
                "startedAt": iso(incident.started_at),
                "resolvedAt": iso(incident.resolved_at),
                "duration": incident_duration(incident),
                "cause": incident.cause,
            }
            for incident in incidents
        ],
        **_passive_urls(monitor, public_url),
    }


def check_out(check: CheckResult) -> dict[str, Any]:
    return {"id": check.id, "monitorId": check.monitor_id, **_check_fields(check)}  # the reference's order


def _check_fields(check: CheckResult) -> dict[str, Any]:
    """A check as the reference shows it, and why it failed or warned (`error`, `errorKind`)."""
    return {
        "id": check.id,
        "status": check.status,
        "responseTime": _response_time(check.response_time),
        "statusCode": check.status_code,
        "region": check.region,
        "checkedAt": iso(check.checked_at),
        "error": check.error_message,
        "errorKind": check.error_kind,
    }


def incident_duration(incident: Incident) -> int | None:
    if incident.resolved_at is None:
        return None
    return round((incident.resolved_at - incident.started_at).total_seconds())


def monitor_incident_out(incident: Incident, monitor: Monitor) -> dict[str, Any]:
    return {
        "id": incident.id,
        "monitorId": incident.monitor_id,
        "monitorName": monitor.name,
        "startedAt": iso(incident.started_at),
        "resolvedAt": iso(incident.resolved_at),
        "duration": incident_duration(incident),
        "cause": incident.cause,
        "isActive": incident.resolved_at is None,
    }
