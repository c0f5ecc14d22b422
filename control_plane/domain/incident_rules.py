"""When a monitor is down, as its `config` says: the keys every type accepts (confirmations,
recoveries, quorum, failure rate, flapping, dependencies) and a HEARTBEAT monitor's schedule.

docs/monitor-config.md documents them for users. The engine reads them through `rules_of`, which
supplies the defaults (2 confirmations, as the API reference says; 1 recovery; a majority of
regions; 5 flaps an hour).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from typing import Annotated, Any

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

DEFAULT_CONFIRMATIONS = 2
DEFAULT_RECOVERIES = 1
DEFAULT_FLAP_THRESHOLD = 5  # transitions an hour
FLAP_STABLE_MINUTES = 30  # a flapping incident closes once the monitor is stable this long
NO_DATA_INTERVALS = 3  # a region silent this many intervals has an incident of its own


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FailureRate(_Strict):
    percent: Annotated[float, Field(gt=0, le=100)]
    windowMinutes: Annotated[int, Field(ge=1, le=1440)]


MonitorRef = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class IncidentRules(_Strict):
    """Accepted in every monitor type's config."""

    confirmations: Annotated[int, Field(ge=1, le=20)] | None = None
    recoveries: Annotated[int, Field(ge=1, le=20)] | None = None
    regionQuorum: Annotated[int, Field(ge=1, le=50)] | None = None
    failureRate: FailureRate | None = None
    flapThreshold: Annotated[int, Field(ge=1, le=100)] | None = None
    dependsOn: Annotated[list[MonitorRef], Field(max_length=20)] | None = None
    # Alerts (control_plane/alerts/reminders.py): notify again while the incident stays open.
    reminderIntervalMinutes: Annotated[int, Field(ge=1, le=10080)] | None = None


def valid_cron(value: str) -> str:
    if not croniter.is_valid(value) or len(value.split()) != 5:
        raise ValueError("must be a cron expression of five fields (minute hour day month weekday)")
    return value


def valid_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Paris)") from None
    return value


Seconds = Annotated[int, Field(ge=1, le=7 * 86400)]


class HeartbeatConfig(IncidentRules):
    """A heartbeat is due every `interval` seconds, or at each `cron` time in `timezone`, plus
    `gracePeriod` seconds; `maxRuntime` and `minRuntime` judge runs reported with /start."""

    cron: Annotated[str, StringConstraints(min_length=9, max_length=200)] | None = None
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    gracePeriod: Annotated[int, Field(ge=0, le=7 * 86400)] | None = None
    maxRuntime: Seconds | None = None
    minRuntime: Seconds | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else valid_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else valid_timezone(value)


@dataclass(frozen=True, slots=True)
class Rules:
    confirmations: int
    recoveries: int
    quorum: int
    failure_percent: float | None
    failure_window_minutes: int | None
    flap_threshold: int
    depends_on: tuple[str, ...]


def rules_of(config: dict[str, Any], region_count: int, *, monitor_type: str = "") -> Rules:
    """The monitor's rules with the defaults filled in. A heartbeat is late once: it needs no
    confirmation unless its config asks for one."""
    default_confirmations = 1 if monitor_type == "HEARTBEAT" else DEFAULT_CONFIRMATIONS
    majority = region_count // 2 + 1
    quorum = int(config.get("regionQuorum") or (1 if region_count <= 1 else majority))
    rate = config.get("failureRate") or {}
    return Rules(
        confirmations=int(config.get("confirmations") or default_confirmations),
        recoveries=int(config.get("recoveries") or DEFAULT_RECOVERIES),
        quorum=max(1, min(quorum, max(region_count, 1))),
        failure_percent=float(rate["percent"]) if rate else None,
        failure_window_minutes=int(rate["windowMinutes"]) if rate else None,
        flap_threshold=int(config.get("flapThreshold") or DEFAULT_FLAP_THRESHOLD),
        depends_on=tuple(config.get("dependsOn") or ()),
    )


# Where a HEARTBEAT monitor's pings come from, as results: one pseudo-region, judged alone.
HEARTBEAT_REGION = "heartbeat"
