"""Monitor responses as the OpenAPI document states them: the reference's fields, plus `config`,
checks' `error` and `errorKind`, and for passive types the URL their traffic goes to.

TypedDicts, so the serializers in monitor_schemas.py are checked against them by mypy and the
responses stay plain dicts for orjson.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import Field, with_config
from typing_extensions import TypedDict

from control_plane.api.incident_schemas import IncidentSummaryOut, MonitorIncidentOut
from control_plane.api.responses import CLOSED, Data, DataWithMessage, Page, Timestamp, one_of
from control_plane.domain.monitor_config import HTTP_METHODS, MONITOR_TYPES

MonitorTypeName = Annotated[str, one_of(*MONITOR_TYPES)]
HttpMethodName = Annotated[str, one_of(*HTTP_METHODS)]
CheckStatus = Annotated[str, one_of("UP", "DOWN")]
HeartbeatUrl = Annotated[str, Field(description="HEARTBEAT monitors only: where the job pings (GET or POST)")]
IngestUrl = Annotated[str, Field(description="LLM monitors only: where the application posts AI events")]
Config = Annotated[dict[str, Any], Field(description="The type's settings (docs/monitor-config.md)")]
AlertChannelIds = Annotated[
    list[str] | None, Field(description="The alert channels it notifies; null: every active one")
]


@with_config(CLOSED)
class LastCheckOut(TypedDict):
    status: CheckStatus
    responseTime: int | None
    checkedAt: Timestamp


@with_config(CLOSED)
class MonitorSummaryOut(TypedDict):
    """A monitor as the list shows it."""

    id: str
    name: str
    url: str | None
    type: MonitorTypeName
    interval: int
    isActive: bool
    method: HttpMethodName
    timeout: int
    regions: list[str]
    createdAt: Timestamp
    lastCheck: LastCheckOut | None
    heartbeatUrl: NotRequired[HeartbeatUrl]
    ingestUrl: NotRequired[IngestUrl]


@with_config(CLOSED)
class MonitorOut(TypedDict):
    """The whole monitor, as create, pause and resume answer it."""

    id: str
    name: str
    url: str | None
    type: MonitorTypeName
    interval: int
    isActive: bool
    method: HttpMethodName
    expectedStatus: int | None
    expectedKeyword: str | None
    timeout: int
    regions: list[str]
    config: Config
    alertChannelIds: AlertChannelIds
    orgId: str
    createdAt: Timestamp
    updatedAt: Timestamp
    heartbeatUrl: NotRequired[HeartbeatUrl]
    ingestUrl: NotRequired[IngestUrl]


@with_config(CLOSED)
class MonitorUpdatedOut(TypedDict):
    """A monitor as an update answers it (the reference's fields for PUT)."""

    id: str
    name: str
    url: str | None
    type: MonitorTypeName
    interval: int
    isActive: bool
    method: HttpMethodName
    timeout: int
    regions: list[str]
    config: Config
    alertChannelIds: AlertChannelIds
    createdAt: Timestamp
    updatedAt: Timestamp
    heartbeatUrl: NotRequired[HeartbeatUrl]
    ingestUrl: NotRequired[IngestUrl]


@with_config(CLOSED)
class MonitorCheckOut(TypedDict):
    """A check as a monitor's detail lists it."""

    id: str
    status: CheckStatus
    responseTime: Annotated[int | None, Field(description="Milliseconds")]
    statusCode: int | None
    region: str
    checkedAt: Timestamp
    error: Annotated[str | None, Field(description="Why the check failed or warned")]
    errorKind: Annotated[str | None, Field(description="The kind of failure, e.g. timeout, dns, tls")]


@with_config(CLOSED)
class CheckOut(TypedDict):
    """A check as the checks list pages it."""

    id: str
    monitorId: str
    status: CheckStatus
    responseTime: Annotated[int | None, Field(description="Milliseconds")]
    statusCode: int | None
    region: str
    checkedAt: Timestamp
    error: Annotated[str | None, Field(description="Why the check failed or warned")]
    errorKind: Annotated[str | None, Field(description="The kind of failure, e.g. timeout, dns, tls")]


@with_config(CLOSED)
class MonitorDetailOut(TypedDict):
    """A monitor with its last 50 checks and 10 most recent incidents."""

    id: str
    name: str
    url: str | None
    type: MonitorTypeName
    interval: int
    isActive: bool
    method: HttpMethodName
    expectedStatus: int | None
    expectedKeyword: str | None
    timeout: int
    regions: list[str]
    config: Config
    alertChannelIds: AlertChannelIds
    createdAt: Timestamp
    checks: list[MonitorCheckOut]
    incidents: list[IncidentSummaryOut]
    heartbeatUrl: NotRequired[HeartbeatUrl]
    ingestUrl: NotRequired[IngestUrl]


Milliseconds = Annotated[float | None, Field(description="Milliseconds; null when nothing measured it")]
Bytes = Annotated[int | None, Field(description="Bytes; null when nothing measured it")]


@with_config(CLOSED)
class PhaseAveragesOut(TypedDict):
    dns: Milliseconds
    tcp: Milliseconds
    tls: Milliseconds
    ttfb: Milliseconds
    download: Milliseconds
    total: Milliseconds
    size: Bytes


@with_config(CLOSED)
class PhaseP95Out(TypedDict):
    dns: Milliseconds
    tcp: Milliseconds
    tls: Milliseconds
    ttfb: Milliseconds
    download: Milliseconds
    total: Milliseconds


@with_config(CLOSED)
class PerformancePointOut(TypedDict):
    """One hour's averages."""

    timestamp: Timestamp
    dns: Milliseconds
    tcp: Milliseconds
    tls: Milliseconds
    ttfb: Milliseconds
    download: Milliseconds
    total: Milliseconds
    size: Bytes


@with_config(CLOSED)
class PerformanceOut(TypedDict):
    averages: PhaseAveragesOut
    p95: PhaseP95Out
    timeSeries: list[PerformancePointOut]
    sampleCount: int


class MonitorSummaryListResponse(Data[list[MonitorSummaryOut]]):
    pass


class MonitorResponse(Data[MonitorOut]):
    pass


class MonitorUpdatedResponse(Data[MonitorUpdatedOut]):
    pass


class MonitorDetailResponse(Data[MonitorDetailOut]):
    pass


class MonitorStateResponse(DataWithMessage[MonitorOut]):
    """Pause and resume: the monitor and what happened to it."""


class CheckPageResponse(Page[CheckOut]):
    pass


class MonitorIncidentListResponse(Data[list[MonitorIncidentOut]]):
    pass


class PerformanceResponse(Data[PerformanceOut]):
    pass
