"""Monitor request bodies, and the serializers that build the responses of monitor_responses.py."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import Field, StringConstraints, field_validator

from control_plane.api.monitor_responses import (
    CheckOut,
    IncidentSummaryOut,
    LastCheckOut,
    MonitorCheckOut,
    MonitorDetailOut,
    MonitorIncidentOut,
    MonitorOut,
    MonitorSummaryOut,
    MonitorUpdatedOut,
)
from control_plane.api.responses import iso_at
from control_plane.api.schemas import Name, NoControlCharacters, RequestModel, examples
from control_plane.core.errors import InvalidInput
from control_plane.core.timefmt import iso, parse_iso
from control_plane.domain.monitor_config import HTTP_METHODS, MONITOR_TYPES
from control_plane.models import CheckResult, Incident, Monitor
from control_plane.services.monitors import MAX_INTERVAL

MonitorType = Literal[MONITOR_TYPES]  # type: ignore[valid-type]
HttpMethod = Literal[HTTP_METHODS]  # type: ignore[valid-type]
Region = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    Field(description="A region this server knows (its agents' and TRAXO_REGIONS); any other is a 400"),
]
# A URL, host or address as the type reads it (monitor_targets checks it against the type).
Target = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048), NoControlCharacters]


class _MonitorFields(RequestModel):
    nullable: ClassVar[frozenset[str]] = frozenset({"url", "expectedStatus", "expectedKeyword", "config"})

    url: Annotated[
        Target | None, Field(description="What to check, as the type reads it; null for HEARTBEAT and LLM")
    ] = None
    interval: (
        Annotated[
            int,
            Field(ge=1, le=MAX_INTERVAL, description="Seconds; at least the plan's minimum (a 403 below it)"),
        ]
        | None
    ) = None
    method: HttpMethod | None = None
    expectedStatus: Annotated[int, Field(ge=100, le=599)] | None = None
    expectedKeyword: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    timeout: Annotated[int, Field(ge=1, le=60, description="Seconds; at most the interval")] | None = None
    regions: (
        Annotated[list[Region], Field(min_length=1, max_length=20, json_schema_extra={"uniqueItems": True})]
        | None
    ) = None
    config: Annotated[
        dict[str, Any] | None, Field(description="The type's settings (docs/monitor-config.md)")
    ] = None

    @field_validator("regions")
    @classmethod
    def _unique(cls, regions: list[str] | None) -> list[str] | None:
        if regions is not None and len(set(regions)) != len(regions):
            raise ValueError("must not repeat a region")
        return regions


class MonitorCreate(_MonitorFields):
    model_config = examples(
        {
            "name": "Production API",
            "url": "https://api.example.com/health",
            "type": "HTTP",
            "interval": 300,
            "method": "GET",
            "expectedStatus": 200,
            "timeout": 10,
            "regions": ["us-east-1"],
        }
    )

    name: Name
    type: MonitorType


class MonitorUpdate(_MonitorFields):
    model_config = examples({"name": "Production API (Updated)", "interval": 600})

    name: Name | None = None
    type: MonitorType | None = None


# What `from` and `to` may be: an ISO 8601 date, or a date and time with an optional offset. The
# OpenAPI document gives the same pattern; a value that matches must still be a real date.
_YEAR = r"(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"  # 0001-9999, as Python's
_DATE = rf"{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,9})?)?"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
DATE_FILTER_PATTERN = rf"^{_DATE}(?:[Tt]{_TIME}{_OFFSET}?)?$"
_DATE_FILTER = re.compile(DATE_FILTER_PATTERN)


def parse_date_filter(value: str | None, field: str) -> datetime | None:
    """A `from`/`to` query value as a UTC datetime (InvalidInput naming the field), or None."""
    if value is None:
        return None
    problem = f"{field}: {value!r} is not an ISO 8601 date (2025-06-15) or timestamp (2025-06-15T12:00:00Z)"
    if not _DATE_FILTER.match(value):
        raise InvalidInput(problem)
    try:
        return parse_iso(value)
    except ValueError:  # e.g. 2025-02-30
        raise InvalidInput(f"{field}: {value!r} is not a real date") from None
    except OverflowError:  # an offset that leaves years 1-9999 once in UTC
        raise InvalidInput(f"{field}: {value!r} is outside years 1-9999 in UTC") from None


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
        "createdAt": iso_at(monitor.created_at),
        "updatedAt": iso_at(monitor.updated_at),
    }
    _add_passive_urls(view, monitor, public_url)
    return view


def monitor_detail_out(
    monitor: Monitor, checks: Sequence[CheckResult], incidents: Sequence[Incident], public_url: str
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
        "createdAt": iso_at(monitor.created_at),
        "checks": [_monitor_check_out(check) for check in checks],
        "incidents": [_incident_summary_out(incident) for incident in incidents],
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


def incident_duration(incident: Incident) -> int | None:
    if incident.resolved_at is None:
        return None
    return round((incident.resolved_at - incident.started_at).total_seconds())


def _incident_summary_out(incident: Incident) -> IncidentSummaryOut:
    return {
        "id": incident.id,
        "startedAt": iso_at(incident.started_at),
        "resolvedAt": iso(incident.resolved_at),
        "duration": incident_duration(incident),
        "cause": incident.cause,
    }


def monitor_incident_out(incident: Incident, monitor: Monitor) -> MonitorIncidentOut:
    return {
        "id": incident.id,
        "monitorId": incident.monitor_id,
        "monitorName": monitor.name,
        "startedAt": iso_at(incident.started_at),
        "resolvedAt": iso(incident.resolved_at),
        "duration": incident_duration(incident),
        "cause": incident.cause,
        "isActive": incident.resolved_at is None,
    }
