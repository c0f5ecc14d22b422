"""Monitor request bodies and query filters, validated once at the edge."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StringConstraints, field_validator

from control_plane.api.schemas import Name, NoControlCharacters, RequestModel, examples
from control_plane.core.errors import InvalidInput
from control_plane.core.timefmt import parse_iso
from control_plane.domain.monitor_config import HTTP_METHODS, MONITOR_TYPES
from control_plane.services.monitors import MAX_INTERVAL

MonitorType = Literal[MONITOR_TYPES]  # type: ignore[valid-type]
HttpMethod = Literal[HTTP_METHODS]  # type: ignore[valid-type]
Region = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    Field(description="A region this server knows (its agents' and TRAXO_REGIONS); any other is a 400"),
]
AlertChannelId = Annotated[str, StringConstraints(min_length=1, max_length=40)]
# A URL, host or address as the type reads it (monitor_targets checks it against the type).
Target = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048), NoControlCharacters]


class _MonitorFields(RequestModel):
    nullable: ClassVar[frozenset[str]] = frozenset(
        {"url", "expectedStatus", "expectedKeyword", "config", "alertChannelIds"}
    )

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

    alertChannelIds: Annotated[
        list[AlertChannelId] | None,
        Field(
            max_length=50,
            json_schema_extra={"uniqueItems": True},
            description="Alert channels of the organization to notify; null or omitted: every active one",
        ),
    ] = None

    @field_validator("alertChannelIds")
    @classmethod
    def _unique_channels(cls, ids: list[str] | None) -> list[str] | None:
        if ids is not None and len(set(ids)) != len(ids):
            raise ValueError("must not repeat a channel")
        return ids

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
