"""Incidents at the edge: the update request, the response shapes (TypedDicts the OpenAPI document
states) and the serializers that build them from services.incidents' rows.

Every incident view has the reference's fields for its endpoint (the organization's list adds
`monitorUrl`, a monitor's detail shows fewer) and then the same additions: kind, regions, the
timeline's status, flapping, suppressedBy, inMaintenance and who acknowledged it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, with_config
from typing_extensions import TypedDict

from control_plane.api.responses import CLOSED, Data, Page, Timestamp, iso_at, one_of
from control_plane.api.schemas import RequestModel, documented
from control_plane.core.timefmt import iso
from control_plane.models import Incident
from control_plane.models.incidents import INCIDENT_KINDS
from control_plane.services.incidents import UPDATE_STATUSES, IncidentDetail, IncidentRow, TimelineEntry
from control_plane.services.sla import SlaDay, SlaReport

# Control characters are refused as in every other text field, except line breaks and tabs: an
# update (a postmortem note) is prose in paragraphs, not a name.
_MESSAGE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# ... and at least one character that is not whitespace: the message is stripped before its minimum.
_PROSE = r"[^\x00-\x08\x0b-\x1f\x7f-\x9f]*"
_MESSAGE_DOC_PATTERN = rf"^{_PROSE}[^\s\x00-\x1f\x7f-\x9f]{_PROSE}$"


def _message_text(value: str) -> str:
    if _MESSAGE_CONTROL.search(value):
        raise ValueError("must not contain control characters (line breaks and tabs are fine)")
    return value


Message = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=5000),
    AfterValidator(_message_text),
    documented(pattern=_MESSAGE_DOC_PATTERN),
]


class IncidentUpdateCreate(RequestModel):
    status: Annotated[
        Literal["investigating", "identified", "monitoring", "resolved"],
        Field(description="The incident's status from now on; `resolved` resolves an open incident"),
    ]
    message: Annotated[Message, Field(description="What people should know (1-5000 characters)")]


Duration = Annotated[int | None, Field(description="Seconds; null while the incident is open")]
IncidentKind = Annotated[str, one_of(*INCIDENT_KINDS)]
IncidentStatus = Annotated[str, one_of(*UPDATE_STATUSES)]


@with_config(CLOSED)
class PersonOut(TypedDict):
    id: str
    email: str


@with_config(CLOSED)
class _IncidentAdditions(TypedDict):
    kind: Annotated[IncidentKind, Field(description="DOWN, SSL_EXPIRY, DNS_CHANGE or NO_DATA")]
    regions: Annotated[list[str], Field(description="The regions failing")]
    status: Annotated[IncidentStatus, Field(description="Its timeline's latest status")]
    flapping: bool
    suppressedBy: Annotated[str | None, Field(description="A dependency down when it opened: no alert")]
    inMaintenance: Annotated[bool, Field(description="Opened during a maintenance window: no alert")]
    acknowledgedAt: Timestamp | None
    acknowledgedBy: PersonOut | None


@with_config(CLOSED)
class IncidentSummaryOut(_IncidentAdditions):
    """An incident as a monitor's detail lists it."""

    id: str
    startedAt: Timestamp
    resolvedAt: Timestamp | None
    duration: Duration
    cause: str | None
    isActive: bool


@with_config(CLOSED)
class MonitorIncidentOut(IncidentSummaryOut):
    """An incident as a monitor's incident list shows it."""

    monitorId: str
    monitorName: str


@with_config(CLOSED)
class IncidentOut(MonitorIncidentOut):
    """An incident as the organization's list shows it."""

    monitorUrl: str | None


@with_config(CLOSED)
class TimelineEntryOut(TypedDict):
    id: str
    kind: Annotated[str, one_of("system", "update", "acknowledged")]
    status: IncidentStatus | None
    message: str
    author: Annotated[PersonOut | None, Field(description="null: the incident engine")]
    createdAt: Timestamp


@with_config(CLOSED)
class IncidentDetailOut(IncidentOut):
    timeline: Annotated[list[TimelineEntryOut], Field(description="Oldest first")]


class IncidentPageResponse(Page[IncidentOut]):
    pass


class IncidentDetailResponse(Data[IncidentDetailOut]):
    pass


class TimelineEntryResponse(Data[TimelineEntryOut]):
    pass


def incident_duration(incident: Incident) -> int | None:
    if incident.resolved_at is None:
        return None
    return round((incident.resolved_at - incident.started_at).total_seconds())


def _person(user_id: str | None, email: str | None) -> PersonOut | None:
    return None if user_id is None or email is None else {"id": user_id, "email": email}


def incident_summary_out(row: IncidentRow) -> IncidentSummaryOut:
    incident = row.incident
    return {
        "id": incident.id,
        "startedAt": iso_at(incident.started_at),
        "resolvedAt": iso(incident.resolved_at),
        "duration": incident_duration(incident),
        "cause": incident.cause,
        "isActive": incident.resolved_at is None,
        **_additions(row),
    }


def monitor_incident_out(row: IncidentRow) -> MonitorIncidentOut:
    incident = row.incident
    return {
        "id": incident.id,
        "monitorId": incident.monitor_id,
        "monitorName": row.monitor_name,
        "startedAt": iso_at(incident.started_at),
        "resolvedAt": iso(incident.resolved_at),
        "duration": incident_duration(incident),
        "cause": incident.cause,
        "isActive": incident.resolved_at is None,
        **_additions(row),
    }


def incident_out(row: IncidentRow) -> IncidentOut:
    incident = row.incident
    return {
        "id": incident.id,
        "monitorId": incident.monitor_id,
        "monitorName": row.monitor_name,
        "monitorUrl": row.monitor_url,
        "startedAt": iso_at(incident.started_at),
        "resolvedAt": iso(incident.resolved_at),
        "duration": incident_duration(incident),
        "cause": incident.cause,
        "isActive": incident.resolved_at is None,
        **_additions(row),
    }


def _additions(row: IncidentRow) -> _IncidentAdditions:
    incident = row.incident
    return {
        "kind": incident.kind,
        "regions": list(incident.regions or []),
        "status": incident.status,
        "flapping": incident.flapping,
        "suppressedBy": incident.suppressed_by,
        "inMaintenance": incident.in_maintenance,
        "acknowledgedAt": iso(incident.acknowledged_at),
        "acknowledgedBy": _person(incident.acknowledged_by, row.acknowledged_by_email),
    }


def timeline_entry_out(entry: TimelineEntry) -> TimelineEntryOut:
    update = entry.update
    return {
        "id": update.id,
        "kind": update.kind,
        "status": update.status,
        "message": update.message,
        "author": _person(update.author_id, entry.author_email),
        "createdAt": iso_at(update.created_at),
    }


def incident_detail_out(detail: IncidentDetail) -> IncidentDetailOut:
    return {**incident_out(detail.row), "timeline": [timeline_entry_out(e) for e in detail.timeline]}


# --- SLA reports ---------------------------------------------------------------------------------


_Uptime = Annotated[float | None, Field(description="Percent, maintenance excluded; null: no checks")]
_Downtime = Annotated[int, Field(description="DOWN incidents' time in the range, maintenance out")]
_Mttr = Annotated[int | None, Field(description="The mean duration of those resolved; null: none")]


@with_config(CLOSED)
class SlaDayOut(TypedDict):
    date: Annotated[str, Field(description="The UTC day, YYYY-MM-DD")]
    uptimePercent: _Uptime
    checks: int
    downtimeSeconds: _Downtime


# Functional syntax: `from` is a Python keyword.
SlaOut = TypedDict(
    "SlaOut",
    {
        "monitorId": str,
        "from": Annotated[Timestamp, Field(description="The first day's UTC midnight")],
        "to": Annotated[Timestamp, Field(description="The UTC midnight after the last day (exclusive)")],
        "uptimePercent": _Uptime,
        "checks": Annotated[int, Field(description="Checks outside maintenance")],
        "failedChecks": int,
        "downtimeSeconds": _Downtime,
        "incidentCount": Annotated[int, Field(description="DOWN incidents overlapping the range")],
        "mttrSeconds": _Mttr,
        "longestOutageSeconds": int,
        "maintenanceSeconds": int,
        "days": list[SlaDayOut],
    },
)
SlaOut.__pydantic_config__ = CLOSED  # type: ignore[attr-defined]  # what with_config sets


class SlaResponse(Data[SlaOut]):
    pass


def sla_out(report: SlaReport) -> SlaOut:
    return {
        "monitorId": report.monitor_id,
        "from": iso_at(report.start),
        "to": iso_at(report.end),
        "uptimePercent": report.uptime_percent,
        "checks": report.checks,
        "failedChecks": report.failed_checks,
        "downtimeSeconds": report.downtime_seconds,
        "incidentCount": report.incident_count,
        "mttrSeconds": report.mttr_seconds,
        "longestOutageSeconds": report.longest_outage_seconds,
        "maintenanceSeconds": report.maintenance_seconds,
        "days": [sla_day_out(day) for day in report.days],
    }


def sla_day_out(day: SlaDay) -> SlaDayOut:
    return {
        "date": day.day.isoformat(),
        "uptimePercent": day.uptime_percent,
        "checks": day.checks,
        "downtimeSeconds": day.downtime_seconds,
    }


SLA_CSV_COLUMNS = ("date", "uptimePercent", "checks", "downtimeSeconds")


def sla_csv(report: SlaReport) -> str:
    """One row per day under a header row; an unknown uptime (no checks) is an empty cell."""
    lines = [",".join(SLA_CSV_COLUMNS)]
    for day in report.days:
        uptime = "" if day.uptime_percent is None else str(day.uptime_percent)
        lines.append(f"{day.day.isoformat()},{uptime},{day.checks},{day.downtime_seconds}")
    return "\r\n".join(lines) + "\r\n"
