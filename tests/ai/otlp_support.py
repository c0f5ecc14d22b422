"""OTLP trace exports built by hand (protobuf messages, as an exporter sends them) for the OTLP tests."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
START_NS = 1_750_000_000_000_000_000  # 2025-06-15T15:06:40Z
_span_ids = itertools.count(1)

CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 150,
    "gen_ai.usage.output_tokens": 80,
}


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, Mapping):
        found = AnyValue()
        found.kvlist_value.values.extend(KeyValue(key=k, value=any_value(v)) for k, v in value.items())
        return found
    found = AnyValue()
    found.array_value.values.extend(any_value(item) for item in value)
    return found


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def span(
    attributes: Mapping[str, Any],
    *,
    name: str = "chat gpt-4o",
    trace_id: bytes = TRACE_ID,
    span_id: bytes | None = None,
    start_ms: float = 0,
    duration_ms: float = 1234.5,
    error: str | None = None,
    events: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> Span:
    """A span of `duration_ms`, starting `start_ms` after START_NS; `error`: an ERROR status with it."""
    start = START_NS + int(start_ms * 1_000_000)
    built = Span(
        trace_id=trace_id,
        span_id=span_id or next(_span_ids).to_bytes(8, "big"),
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(duration_ms * 1_000_000),
        attributes=key_values(attributes),
    )
    for event_name, event_attributes in events:
        built.events.add(name=event_name, time_unix_nano=start, attributes=key_values(event_attributes))
    if error is not None:
        built.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return built


def export(*spans: Span, service: str = "chat-api") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(key_values({"service.name": service}))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests"
    scope_spans.spans.extend(spans)
    return request
