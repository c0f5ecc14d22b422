"""/api/maintenance: request bodies (validated at the edge), the response models the OpenAPI
document states, and the serializer that fills them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema, field_validator, with_config
from typing_extensions import TypedDict

from control_plane.api.monitor_schemas import DATE_FILTER_PATTERN
from control_plane.api.responses import CLOSED, Data, Timestamp, iso_at
from control_plane.api.schemas import (
    NAME_DOC_PATTERN,
    NoControlCharacters,
    RequestModel,
    documented,
    examples,
)
from control_plane.core.timefmt import parse_iso
from control_plane.domain.incident_rules import valid_cron, valid_timezone
from control_plane.maintenance.service import WindowView
from control_plane.maintenance.windows import Schedule, current_or_next

# Instants a window may start or end at: far from datetime's limits, so a series' arithmetic
# (an occurrence's end, a week before a range) never leaves what Python and croniter can hold.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_INSTANT = re.compile(DATE_FILTER_PATTERN)
MAX_DURATION_MINUTES = 7 * 24 * 60


def _instant(value: Any) -> datetime:
    if not isinstance(value, str) or not _INSTANT.match(value):
        raise ValueError("must be an ISO 8601 timestamp (2025-06-20T02:00:00.000Z) or date (2025-06-20)")
    try:
        parsed = parse_iso(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is not a real date and time") from None
    if not EARLIEST <= parsed < LATEST:
        raise ValueError("must be in the years 1970-8999 (UTC)")
    return parsed


Instant = Annotated[
    datetime,
    BeforeValidator(_instant),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DATE_FILTER_PATTERN,
            "description": "ISO 8601; without an offset, UTC; a date alone is its midnight UTC; "
            "years 1970-8999",
            "examples": ["2025-06-20T02:00:00.000Z"],
        }
    ),
]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    NoControlCharacters,
    documented(pattern=NAME_DOC_PATTERN),
]
Description = Annotated[str, StringConstraints(max_length=5000)]
MonitorId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=40),
    Field(description="A monitor of the organization; omitted or null: the whole organization"),
]
Recurrence = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=9, max_length=200),
    Field(
        description="Five-field cron expression (minute hour day month weekday) read in `timezone`: "
        "each match between startsAt and endsAt starts an occurrence lasting durationMinutes"
    ),
]
Duration = Annotated[int, Field(ge=1, le=MAX_DURATION_MINUTES, description="Each occurrence's length")]
TimeZone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    Field(description="IANA time zone the recurrence is read in (default UTC)"),
]

# API field -> column.
_COLUMNS = {
    "title": "title",
    "description": "description",
    "monitorId": "monitor_id",
    "startsAt": "starts_at",
    "endsAt": "ends_at",
    "isActive": "is_active",
    "recurrence": "recurrence",
    "durationMinutes": "duration_minutes",
    "timezone": "timezone",
}


class _WindowFields(RequestModel):
    description: Description | None = None
    monitorId: MonitorId | None = None
    recurrence: Recurrence | None = None
    durationMinutes: Duration | None = None
    timezone: TimeZone | None = None

    @field_validator("recurrence")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else valid_cron(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else valid_timezone(value)

    def columns(self) -> dict[str, Any]:
        """The fields sent, as the columns they change."""
        return {_COLUMNS[name]: value for name, value in self.model_dump(exclude_unset=True).items()}


class MaintenanceCreate(_WindowFields):
    model_config = examples(
        {
            "title": "Database upgrade",
            "description": "Upgrading PostgreSQL to v16",
            "startsAt": "2025-06-20T02:00:00.000Z",
            "endsAt": "2025-06-20T04:00:00.000Z",
        },
        {
            "title": "Weekly patching",
            "startsAt": "2025-06-01T00:00:00.000Z",
            "endsAt": "2026-06-01T00:00:00.000Z",
            "recurrence": "0 3 * * 0",
            "durationMinutes": 90,
            "timezone": "Europe/Paris",
        },
    )
    nullable: ClassVar[frozenset[str]] = frozenset({"description", "monitorId"})

    title: Title
    startsAt: Instant
    endsAt: Instant


class MaintenanceUpdate(_WindowFields):
    model_config = examples({"endsAt": "2025-06-20T06:00:00.000Z"}, {"isActive": False})
    # null clears: the description, the monitor (org-wide), the recurrence (a one-off window).
    nullable: ClassVar[frozenset[str]] = frozenset({"description", "monitorId", "recurrence"})

    title: Title | None = None
    startsAt: Instant | None = None
    endsAt: Instant | None = None
    isActive: bool | None = None


@with_config(CLOSED)
class OccurrenceOut(TypedDict):
    startsAt: Timestamp
    endsAt: Timestamp


@with_config(CLOSED)
class MaintenanceWindowOut(TypedDict):
    """The reference's fields, plus its timestamps and its recurrence (null for a one-off window)."""

    id: str
    title: str
    description: str | None
    monitorId: Annotated[str | None, Field(description="null: the whole organization")]
    monitorName: str | None
    startsAt: Timestamp
    endsAt: Timestamp
    isActive: Annotated[bool, Field(description="Enabled; a disabled window is no maintenance")]
    recurrence: str | None
    durationMinutes: int | None
    timezone: str | None
    nextOccurrence: Annotated[
        OccurrenceOut | None,
        Field(description="Recurring windows: the occurrence in progress, else the next; null once over"),
    ]
    createdAt: Timestamp
    updatedAt: Timestamp


class MaintenanceWindowResponse(Data[MaintenanceWindowOut]):
    pass


class MaintenanceWindowListResponse(Data[list[MaintenanceWindowOut]]):
    pass


def window_out(view: WindowView, now: datetime) -> MaintenanceWindowOut:
    window = view.window
    next_occurrence: OccurrenceOut | None = None
    if window.recurrence is not None:
        found = current_or_next(Schedule.of(window), now)
        if found is not None:
            next_occurrence = {"startsAt": iso_at(found[0]), "endsAt": iso_at(found[1])}
    return {
        "id": window.id,
        "title": window.title,
        "description": window.description,
        "monitorId": window.monitor_id,
        "monitorName": view.monitor_name,
        "startsAt": iso_at(window.starts_at),
        "endsAt": iso_at(window.ends_at),
        "isActive": window.is_active,
        "recurrence": window.recurrence,
        "durationMinutes": window.duration_minutes,
        "timezone": window.timezone,
        "nextOccurrence": next_occurrence,
        "createdAt": iso_at(window.created_at),
        "updatedAt": iso_at(window.updated_at),
    }
