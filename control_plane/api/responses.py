"""JSON responses rendered with orjson, and the envelopes the OpenAPI document describes them with.

Routes return JsonResponse themselves, built from the serializers' dicts: FastAPI neither validates
nor re-serializes a Response, so a 1,000-monitor list costs what orjson costs. The `response_model=`
each route declares is its documentation, which the schemathesis test holds the server to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar, cast

import orjson
from pydantic import BaseModel, ConfigDict, WithJsonSchema, with_config
from starlette.responses import JSONResponse
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

from control_plane.core.timefmt import iso

T = TypeVar("T")

# Every response model forbids what it does not list, so the document cannot omit a field the
# server sends (the schemathesis test compares each answer with it).
CLOSED = ConfigDict(extra="forbid")

# What timefmt.iso writes: ISO 8601, UTC, milliseconds and Z.
Timestamp = Annotated[
    str, WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2025-06-15T12:00:00.000Z"]})
]

# iso() of a datetime is never None: the same function, typed so for the fields that never are.
iso_at = cast(Callable[[datetime], str], iso)


def one_of(*values: str) -> WithJsonSchema:
    """A string field documented as an enum: the column is a plain string, its values are these."""
    return WithJsonSchema({"type": "string", "enum": list(values)})


class JsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@with_config(CLOSED)
class Pagination(TypedDict):
    page: int
    limit: int
    total: int
    totalPages: int


def pagination(page: int, limit: int, total: int) -> Pagination:
    return {"page": page, "limit": limit, "total": total, "totalPages": math.ceil(total / limit)}


class Data(BaseModel, Generic[T]):
    """`{"data": ...}`: what most operations answer. Subclasses name each use (MonitorResponse)."""

    model_config = CLOSED
    data: T


class Page(BaseModel, Generic[T]):
    """`{"data": [...], "pagination": {...}}`: a page of a longer list."""

    model_config = CLOSED
    data: list[T]
    pagination: Pagination


class DataWithMessage(BaseModel, Generic[T]):
    """`{"data": ..., "message": "..."}`: a change and what it did (pause, resume, invite)."""

    model_config = CLOSED
    data: T
    message: str


class MessageResponse(BaseModel):
    """`{"message": "..."}`: what deletions answer."""

    model_config = CLOSED
    message: str


class ErrorResponse(BaseModel):
    """`{"error": "..."}`: every error; the message names the field or resource and what was wrong."""

    model_config = CLOSED
    error: str


def data_response(data: object, status_code: int = 200) -> JsonResponse:
    return JsonResponse({"data": data}, status_code=status_code)


def page_response(data: list[Any], page: Pagination) -> JsonResponse:
    return JsonResponse({"data": data, "pagination": page})


def message_response(message: str) -> JsonResponse:
    return JsonResponse({"message": message})


def data_message_response(data: object, message: str, status_code: int = 200) -> JsonResponse:
    return JsonResponse({"data": data, "message": message}, status_code=status_code)
