"""The file `traxo apply` reads: pydantic models of traxo.yaml, in the API's field names (camelCase).

Resources refer to each other by name (a monitor's `alertChannels` and `config.dependsOn`, a
maintenance window's `monitor`, a status page's `monitors`), never by id, so a file is the same for
every organization it is applied to. The JSON Schema shipped for editors is generated from these.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from control_plane.core.timefmt import parse_iso
from control_plane.domain.monitor_config import HTTP_METHODS, MONITOR_TYPES

CHANNEL_TYPES = ("EMAIL", "SLACK", "WEBHOOK", "PAGERDUTY", "APPRISE")
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[Tt ][0-9:.]+(?:[Zz]|[+-]\d{2}:\d{2})?)?$")


def _instant(value: str) -> str:
    if not _INSTANT.match(value):
        raise ValueError("must be an ISO 8601 timestamp (2025-06-20T02:00:00Z) or date (2025-06-20)")
    try:
        parse_iso(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is not a real date and time") from None
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Instant = Annotated[
    str,
    AfterValidator(_instant),
    Field(description="ISO 8601; without an offset, UTC; a date alone is its midnight UTC"),
]
MonitorRef = Annotated[Name, Field(description="The name of a monitor (in this file or the organization)")]
ChannelRef = Annotated[
    Name, Field(description="The name of an alert channel (in this file or the organization)")
]


class FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Monitor(FileModel):
    """POST /api/monitors' fields, with alert channels and `config.dependsOn` by name."""

    name: Annotated[Name, Field(description="Unique among the file's monitors: the monitor's identity")]
    type: Literal[MONITOR_TYPES]  # type: ignore[valid-type]
    url: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048)] | None = None  # as the API
    interval: (
        Annotated[
            int,
            Field(ge=15, le=3600, description="Seconds, at least the plan's minimum; omitted: the server's"),
        ]
        | None
    ) = None
    method: Literal[HTTP_METHODS] = "GET"  # type: ignore[valid-type]
    expectedStatus: Annotated[int, Field(ge=100, le=599)] | None = None
    expectedKeyword: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    timeout: (
        Annotated[int, Field(ge=1, le=60, description="Seconds, at most the interval; omitted: the server's")]
        | None
    ) = None
    regions: (
        Annotated[
            list[Annotated[str, StringConstraints(min_length=1, max_length=64)]],
            Field(min_length=1, max_length=20, description="Omitted: the server's default regions"),
        ]
        | None
    ) = None
    config: Annotated[
        dict[str, Any],
        Field(description="The type's settings (docs/monitor-config.md); dependsOn lists monitor names"),
    ] = {}
    alertChannels: Annotated[
        list[ChannelRef] | None,
        Field(max_length=50, description="Channels to notify, by name; omitted or null: every active one"),
    ] = None
    isActive: Annotated[bool, Field(description="false: paused")] = True


class AlertChannel(FileModel):
    """POST /api/alert-channels' fields (`isActive` as reads show it)."""

    name: Annotated[Name, Field(description="Unique among the file's channels: the channel's identity")]
    type: Annotated[
        Literal[CHANNEL_TYPES],  # type: ignore[valid-type]
        Field(description="Cannot change once created (delete the channel and create it anew)"),
    ]
    config: Annotated[
        dict[str, Any],
        Field(description="By type (docs/alerts-channels.md); write secrets as ${ENV_VAR}"),
    ]
    isActive: bool = True


class MaintenanceWindow(FileModel):
    """POST /api/maintenance's fields, the monitor by name."""

    title: Annotated[Title, Field(description="Unique among the file's windows: the window's identity")]
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    monitor: Annotated[MonitorRef | None, Field(description="Omitted or null: the whole organization")] = None
    startsAt: Instant
    endsAt: Instant
    isActive: bool = True
    recurrence: (
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, min_length=9, max_length=200),
            Field(description="Five-field cron"),
        ]
        | None
    ) = None
    durationMinutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] | None = None
    timezone: (
        Annotated[str, StringConstraints(min_length=1, max_length=64), Field(description="IANA; default UTC")]
        | None
    ) = None


class Component(FileModel):
    """A status page component in object form."""

    monitor: MonitorRef
    displayName: Annotated[Name, Field(description="Default: the monitor's name")] | None = None
    order: Annotated[int, Field(ge=0, le=10_000, description="Default: its place in the list")] | None = None
    group: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = (
        None
    )


class StatusPage(FileModel):
    """POST /api/status-pages' fields, components' monitors by name."""

    name: Name
    slug: Annotated[
        str,
        StringConstraints(min_length=1, max_length=50, pattern=SLUG_PATTERN),
        Field(description="The page's identity: unique among the file's pages (and every organization's)"),
    ]
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    customDomain: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=253)] | None
    ) = None
    isPublic: bool = True
    hideBranding: bool = False
    customCss: Annotated[str, StringConstraints(max_length=50_000)] | None = None
    logoUrl: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048)] | None = None
    faviconUrl: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048)] | None = None
    monitors: Annotated[
        list[MonitorRef | Component],
        Field(max_length=100, description="Components in order: monitor names, or component objects"),
    ]


class TraxoFile(FileModel):
    """traxo.yaml: what an organization's monitors, channels, windows and pages should be."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        title="traxo.yaml",
        json_schema_extra={"$id": "https://traxo.dev/schemas/traxo.schema.json"},
    )

    version: Annotated[Literal[1], Field(description="The file format's version")]
    monitors: list[Monitor] = []
    alertChannels: list[AlertChannel] = []
    maintenanceWindows: list[MaintenanceWindow] = []
    statusPages: list[StatusPage] = []
