"""Every error leaves as {"error": "..."} with the right status; nothing leaks a traceback. A
database that cannot take work is a 503 with Retry-After (unavailable.py), not an error of ours."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from control_plane.api.middleware import REQUEST_ID_KEY
from control_plane.api.responses import JsonResponse
from control_plane.api.unavailable import unavailable_response
from control_plane.core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotConfigured,
    NotFound,
    UpstreamError,
)
from control_plane.db import UnavailableLog, database_unavailable

log = logging.getLogger(__name__)

_STATUS_BY_ERROR: dict[type[DomainError], int] = {
    InvalidInput: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    NotConfigured: 501,
    UpstreamError: 502,
}

_DEFAULT_MESSAGES = {
    401: "Missing or invalid API key",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    429: "Rate limit exceeded",
}

# FastAPI's own details that say less than ours.
_CLEARER_DETAILS = {
    # A body that is not even UTF-8 text (JSON's encoding): json.loads fails before parsing.
    "There was an error parsing the body": "Request body is not valid JSON: it must be UTF-8 text",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def status_of(exc: DomainError) -> int:
    """The HTTP status a domain error answers."""
    return _STATUS_BY_ERROR.get(type(exc), 400)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JsonResponse:
    return JsonResponse({"error": message}, status_code=status, headers=headers)


def describe_validation_error(error: dict[str, Any]) -> str:
    """One pydantic error as 'field: rule', the field as the client wrote it."""
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "header")]
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "Request body is not valid JSON"
    if kind == "missing" and not loc:
        return "Request body is required"
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if not loc:
        return message if ":" in message or message.startswith("Request body") else f"Request body: {message}"
    field = ".".join(loc)
    if kind == "missing":
        return f"{field}: field required"
    if kind == "extra_forbidden":
        return f"{field}: unknown field"
    return f"{field}: {message}"


def describe_content_type(content_type: str | None) -> str:
    """Why a request body was not read as JSON: its Content-Type header."""
    if not content_type or not content_type.strip():
        return "Content-Type: header missing; send the JSON body with 'Content-Type: application/json'"
    media_type = content_type.partition(";")[0].strip()[:100]
    return f"Content-Type: must be application/json for a JSON body (got {media_type!r})"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JsonResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(DomainError)
    async def _domain_error(_: Request, exc: DomainError) -> JsonResponse:
        return error_response(status_of(exc), exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JsonResponse:
        # FastAPI hands the model the raw bytes when the Content-Type did not say JSON (`curl -d`
        # sends a form type): the header is what was wrong, not the body.
        if isinstance(exc.body, bytes | bytearray):
            return error_response(400, describe_content_type(request.headers.get("content-type")))
        errors = exc.errors()
        messages = list(dict.fromkeys(describe_validation_error(dict(e)) for e in errors))
        return error_response(400, "; ".join(messages[:5]) if messages else "Invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JsonResponse:
        # Starlette's own details are bare status phrases; ours say what was wrong.
        detail: str | None = exc.detail if isinstance(exc.detail, str) else None
        if detail == HTTPStatus(exc.status_code).phrase:
            detail = None
        detail = _CLEARER_DETAILS.get(detail or "", detail)
        message = detail or _DEFAULT_MESSAGES.get(exc.status_code, "Request failed")
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    outage = UnavailableLog()

    def _unavailable(request: Request, exc: Exception) -> JsonResponse:
        outage.note(request.method, request.url.path, exc, request.scope.get(REQUEST_ID_KEY))
        return unavailable_response()

    async def _database_error(request: Request, exc: Exception) -> JsonResponse:
        if database_unavailable(exc):
            return _unavailable(request, exc)
        raise exc  # a statement's own error: on to _unexpected, a 500 with its traceback

    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(psycopg.Error, _database_error)  # the stores that use the driver itself

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JsonResponse:
        if database_unavailable(exc):  # raised outside the routes (a middleware's own query)
            return _unavailable(request, exc)
        # Starlette's error layer answers this inside RequestEdge (TraxoApi's edge), which marks the
        # answer with the request id's header; the body repeats it for users to quote.
        request_id = request.scope.get(REQUEST_ID_KEY)
        log.exception(
            "unhandled error on %s %s", request.method, request.url.path, extra={"request_id": request_id}
        )
        return internal_error(request_id)


def internal_error(request_id: str | None) -> JsonResponse:
    """An unhandled error's 500: the request id in the body, for users to quote."""
    if request_id is None:
        return error_response(500, "Internal server error")
    return JsonResponse({"error": "Internal server error", "requestId": request_id}, status_code=500)
