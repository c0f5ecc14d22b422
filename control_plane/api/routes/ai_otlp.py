"""POST /api/ai/otlp/{monitorId}/v1/traces: OpenTelemetry GenAI spans (OTLP/HTTP, protobuf or
JSON) as LLM events. Public, as the ingest: the monitor id routes it, so an OTLP exporter (the
OpenTelemetry SDK's, OpenLLMetry's, OpenLIT's) points here with nothing but its endpoint set.

Answers as OTLP/HTTP asks, in the request's encoding: 200 with an ExportTraceServiceResponse
(partial_success counting the GenAI spans not stored: values that broke a rule, or over the daily
limit), 429 with Retry-After when the daily limit kept every event out and 503 when the write
failed (exporters retry both); a protobuf request's failure is a google.rpc.Status (a JSON
request's is `{"error"}`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from control_plane.ai.ingest.committer import Accepted, IngestFailed, OverLimit
from control_plane.ai.otlp import wire as otlp
from control_plane.ai.otlp.spans import events_of
from control_plane.api.deps import RuntimeDep, spend_failed_guess
from control_plane.api.errors import ApiError, error_response
from control_plane.api.openapi import errors
from control_plane.core.errors import InvalidInput, NotFound

router = APIRouter(prefix="/api/ai/otlp", tags=["ai ingest"])

MonitorId = Annotated[str, Path(alias="monitorId", description="The LLM monitor's id (mon_...)")]

_UNAVAILABLE = "The AI events could not be stored; send the export again"
_REASONS_SHOWN = 5  # rejected spans named in partial_success.error_message; the rest are counted
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_BODY = {
    "required": True,
    "description": "An OTLP ExportTraceServiceRequest: protobuf, or OTLP/JSON (hex trace and span ids); "
    "`Content-Encoding: gzip` accepted",
    "content": {
        otlp.Encoding.PROTOBUF.value: _BINARY,
        otlp.Encoding.JSON.value: {
            "schema": {
                "type": "object",
                # null is proto3 JSON's default value: no spans, as an absent field
                "properties": {"resourceSpans": {"type": ["array", "null"], "items": {"type": "object"}}},
            }
        },
    },
}
_EXPORTED = {
    "description": "Stored (an ExportTraceServiceResponse in the request's encoding): `partialSuccess` "
    "counts the GenAI spans that were not, and says why",
    "content": {
        otlp.Encoding.PROTOBUF.value: _BINARY,
        otlp.Encoding.JSON.value: {
            "schema": {
                "type": "object",
                "properties": {
                    "partialSuccess": {
                        "type": "object",
                        "properties": {
                            "rejectedSpans": {"type": "string", "pattern": "^[0-9]+$"},
                            "errorMessage": {"type": "string"},
                        },
                    }
                },
            }
        },
    },
}
_ERRORS: dict[int | str, dict[str, Any]] = errors(
    (400, "The body is no ExportTraceServiceRequest, or the monitor is not an LLM monitor or is paused"),
    (404, "No monitor has this id"),
    (413, "Request body over the server's limit, as sent or once inflated"),
    (
        415,
        "Content-Type is neither application/x-protobuf nor application/json, or the Content-Encoding "
        "is not gzip",
    ),
    (
        429,
        "The organization's daily AI event limit kept every event of the export out; or this address's "
        "failed authentications (unknown monitor ids, as wrong keys) per minute are spent",
    ),
    (
        503,
        "The events could not be stored this time (the ingest at capacity, or its write failed): send "
        "the export again",
    ),
)
for _status in (400, 404, 429, 503):  # a protobuf request's failure is a google.rpc.Status
    _ERRORS[_status]["content"] = {otlp.Encoding.PROTOBUF.value: _BINARY}
_ERRORS[503]["headers"] = {
    "Retry-After": {
        "description": "Seconds to wait",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


@router.post(
    "/{monitorId}/v1/traces",
    response_class=Response,
    responses={200: _EXPORTED, **_ERRORS},
    openapi_extra={"security": [], "requestBody": _BODY},
)
async def export_traces(request: Request, runtime: RuntimeDep, monitor_id: MonitorId) -> Response:
    """OTLP/HTTP traces: each span that follows the OpenTelemetry GenAI conventions becomes an LLM
    event (provider, model, tokens, duration as latency, error status), retrieval spans give the
    RAG figures of their trace's LLM call, other spans are skipped. A retried export is stored once."""
    try:
        encoding = otlp.encoding_of(request.headers.get("content-type"))
    except otlp.UnsupportedEncoding as exc:
        return error_response(415, exc.message)
    settings = runtime.settings
    try:
        body = otlp.inflate(
            await request.body(), request.headers.get("content-encoding"), settings.max_body_bytes
        )
        mapped = events_of(otlp.decode(body, encoding), metadata_max_bytes=settings.ai_metadata_max_bytes)
        answers: list[Accepted | OverLimit] = []
        step = settings.ai_ingest_batch_max
        # An export without GenAI spans stores nothing, but its monitor is still looked up.
        for start in range(0, max(len(mapped.events), 1), step):
            answers += await runtime.ai_ingest.submit(monitor_id, mapped.events[start : start + step])
    except otlp.UnsupportedEncoding as exc:
        return error_response(415, exc.message)
    except otlp.InflatedTooLarge as exc:
        return error_response(413, exc.message)
    except NotFound as exc:
        # The monitor id is the ingest's only secret: a wrong one is a failed authentication.
        client = request.client.host if request.client else None
        try:
            await spend_failed_guess(runtime, client)
        except ApiError as limited:
            return _failure(encoding, 429, limited.message, limited.headers)
        return _failure(encoding, 404, exc.message)
    except InvalidInput as exc:
        return _failure(encoding, 400, exc.message)
    except IngestFailed:  # nothing of this request's group was stored: OTLP exporters retry a 503
        return _failure(encoding, 503, _UNAVAILABLE, {"Retry-After": "1"})
    over = [answer for answer in answers if isinstance(answer, OverLimit)]
    if over and len(over) == len(answers):
        retry_after = str(min(answer.retry_after for answer in over))
        return _failure(encoding, 429, over[0].error, {"Retry-After": retry_after})
    reasons = list(mapped.rejected)
    if over:
        reasons.insert(0, f"{len(over)} spans over the daily limit: {over[0].error}")
    rejected = len(mapped.rejected) + len(over)
    message = "; ".join(reasons[:_REASONS_SHOWN])
    if len(reasons) > _REASONS_SHOWN:
        message += f"; and {len(reasons) - _REASONS_SHOWN} more"
    return Response(otlp.export_response(encoding, rejected, message), media_type=encoding.value)


def _failure(
    encoding: otlp.Encoding, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        otlp.error_body(encoding, status, message),
        status_code=status,
        media_type=encoding.value,
        headers=headers,
    )
