"""POST /api/ai/otlp/{monitorId}/v1/traces: spans sent by the OpenTelemetry SDK's own OTLP/HTTP
exporter to a real server on 127.0.0.1, OTLP/JSON and protobuf bodies sent by hand, and what the
database holds after."""

from __future__ import annotations

import asyncio
import base64
import gzip
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import orjson
import pytest
import uvicorn
from google.protobuf import json_format
from google.rpc import status_pb2  # googleapis-common-protos: the exporter's dependency
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import select

from control_plane.ai.pricing import cost_usd
from control_plane.api.app import create_app
from control_plane.domain.plans import limits_for
from control_plane.models import Monitor
from control_plane.models.ai import AiDailyUsage, AiEvent
from tests.ai.otlp_support import CHAT, START_NS, TRACE_ID, export, span
from tests.ai.support import insert_llm_monitor
from tests.factories import insert_monitor
from tests.waiting import eventually

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def otlp_json(*spans) -> bytes:
    """OTLP/JSON as an exporter writes it: proto3's JSON with hex ids."""
    document = json_format.MessageToDict(export(*spans))
    for wire_span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId"):
            wire_span[key] = base64.b64decode(wire_span[key]).hex()
    return orjson.dumps(document)


def protobuf(*spans) -> bytes:
    return export(*spans).SerializeToString()


def path(monitor_id: str) -> str:
    return f"/api/ai/otlp/{monitor_id}/v1/traces"


@pytest.fixture
async def monitor(database, world) -> Monitor:
    return await insert_llm_monitor(database, world.org_a)


@pytest.fixture
async def server(settings, runtime) -> AsyncIterator[str]:
    """The API served by uvicorn on a port of 127.0.0.1, in this test's loop and with its runtime."""
    config = uvicorn.Config(create_app(settings, runtime), host="127.0.0.1", port=0, log_level="warning")
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve())
    await eventually(lambda: served.started or task.done(), what="uvicorn to listen")
    assert served.started, task
    port = served.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    served.should_exit = True
    await task


def sdk_spans(*attributes: dict, error: str | None = None) -> Sequence[ReadableSpan]:
    """Spans as the OpenTelemetry SDK finishes them (one trace, 1,234.5 ms each)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "chat-api"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("request", start_time=START_NS) as parent:
        for each in attributes:
            child = tracer.start_span(
                "chat gpt-4o", kind=SpanKind.CLIENT, attributes=each, start_time=START_NS
            )
            if error is not None:
                child.set_status(Status(StatusCode.ERROR, error))
            child.end(end_time=START_NS + 1_234_500_000)
        parent.end(end_time=START_NS + 2_000_000_000)
    provider.shutdown()
    return memory.get_finished_spans()


async def send(endpoint: str, spans: Sequence[ReadableSpan], **options: object) -> SpanExportResult:
    def run() -> SpanExportResult:
        exporter = OTLPSpanExporter(endpoint=endpoint, timeout=10, **options)  # type: ignore[arg-type]
        try:
            return exporter.export(spans)
        finally:
            exporter.shutdown()

    return await asyncio.to_thread(run)  # the exporter is synchronous (requests)


async def stored(database, monitor: Monitor) -> list[AiEvent]:
    async with database.session() as session:
        rows = await session.scalars(select(AiEvent).where(AiEvent.monitor_id == monitor.id))
        return sorted(rows, key=lambda row: row.client_event_id or "")


async def test_a_span_sent_by_the_sdk_exporter_is_stored_with_its_tokens_model_cost_and_latency(
    server, database, monitor
):
    spans = sdk_spans(
        {**CHAT, "gen_ai.usage.cache_read.input_tokens": 100, "gen_ai.response.id": "chatcmpl-1"}
    )

    assert await send(f"{server}{path(monitor.id)}", spans) is SpanExportResult.SUCCESS

    [event] = await stored(database, monitor)
    chat = next(s for s in spans if s.name == "chat gpt-4o")
    assert chat.context is not None
    assert event.client_event_id == f"{chat.context.trace_id:032x}:{chat.context.span_id:016x}"
    assert (event.provider, event.model, event.source) == ("openai", "gpt-4o-2024-08-06", "otlp")
    assert (event.input_tokens, event.output_tokens, event.total_tokens, event.cached_tokens) == (
        150,
        80,
        230,
        100,
    )
    assert event.latency_ms == 1234.5
    assert (event.status, event.error) == ("success", None)
    expected = cost_usd(
        "openai",
        "gpt-4o-2024-08-06",
        event.created_at,
        prompt_tokens=150,
        completion_tokens=80,
        cached_tokens=100,
    )
    assert expected is not None and event.cost_usd == pytest.approx(expected)
    assert event.event_metadata is not None
    assert event.event_metadata["serviceName"] == "chat-api"
    assert event.event_metadata["responseId"] == "chatcmpl-1"


async def test_a_gzipped_export_sent_twice_is_stored_once(server, database, monitor):
    spans = sdk_spans(
        CHAT, {**CHAT, "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini"}
    )
    endpoint = f"{server}{path(monitor.id)}"

    assert await send(endpoint, spans, compression=Compression.Gzip) is SpanExportResult.SUCCESS
    assert await send(endpoint, spans, compression=Compression.Gzip) is SpanExportResult.SUCCESS  # a retry

    events = await stored(database, monitor)
    assert sorted(event.model for event in events) == ["gpt-4o-2024-08-06", "gpt-4o-mini"]
    async with database.session() as session:
        [daily] = await session.scalars(select(AiDailyUsage).where(AiDailyUsage.org_id == monitor.org_id))
    assert daily.events == 2


async def test_an_error_span_from_the_sdk_is_an_error_event(server, database, monitor):
    spans = sdk_spans({**CHAT, "http.response.status_code": 429}, error="Rate limit reached")

    assert await send(f"{server}{path(monitor.id)}", spans) is SpanExportResult.SUCCESS

    [event] = await stored(database, monitor)
    assert (event.status, event.error, event.status_code) == ("error", "Rate limit reached", 429)


async def test_otlp_json_with_hex_ids_is_stored_and_answered_in_json(api, database, monitor):
    request = export(span({**CHAT, "gen_ai.usage.input_tokens": "150"}))
    document = json_format.MessageToDict(request)
    [wire_span] = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    wire_span["traceId"] = TRACE_ID.hex().upper()  # hex, any case
    wire_span["spanId"] = "00000000000000ab"
    wire_span["kind"] = 3
    wire_span["startTimeUnixNano"] = int(wire_span["startTimeUnixNano"])  # a number, or a string as below
    body = orjson.dumps(document)

    response = await api.post(path(monitor.id), content=body, headers=JSON)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    [event] = await stored(database, monitor)
    assert event.client_event_id == f"{TRACE_ID.hex()}:00000000000000ab"
    assert (event.input_tokens, event.output_tokens, event.latency_ms) == (150, 80, 1234.5)


async def test_older_attribute_names_are_read(api, database, monitor):
    old = {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.prompt_tokens": 1000,
        "gen_ai.usage.completion_tokens": 200,
        "llm.usage.total_tokens": 1200,
        "gen_ai.usage.cache_read_input_tokens": 600,
        "gen_ai.usage.reasoning_tokens": 50,
    }
    response = await api.post(
        path(monitor.id), content=export(span(old)).SerializeToString(), headers=PROTOBUF
    )

    assert response.status_code == 200 and response.content == b""  # a full success: partial_success unset
    [event] = await stored(database, monitor)
    assert (event.model, event.input_tokens, event.output_tokens, event.total_tokens) == (
        "gpt-4o-mini",
        1000,
        200,
        1200,
    )
    assert (event.cached_tokens, event.reasoning_tokens) == (600, 50)
    assert event.cost_usd is not None


async def test_a_retrieval_span_gives_the_next_call_its_rag_figures(api, database, monitor):
    retrieval = span(
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.retrieval.documents": '[{"id": "a", "score": 0.9}, {"id": "b", "score": 0.5}]',
        },
        duration_ms=80,
    )
    chat = span(CHAT, start_ms=100)
    response = await api.post(
        path(monitor.id), content=export(retrieval, chat).SerializeToString(), headers=PROTOBUF
    )

    assert response.status_code == 200, response.text
    [event] = await stored(database, monitor)
    assert (event.rag_docs_retrieved, event.rag_avg_relevance, event.rag_retrieval_ms) == (2, 0.7, 80.0)


async def test_nul_characters_in_a_span_are_dropped_not_a_failed_write(api, database, monitor):
    chat = span(
        {**CHAT, "gen_ai.response.model": "gpt-4o\x00", "gen_ai.response.id": "r\x00"}, error="bad\x00 key"
    )
    chat.name = "chat\x00"

    response = await api.post(path(monitor.id), content=protobuf(chat), headers=PROTOBUF)

    assert response.status_code == 200, response.content
    [event] = await stored(database, monitor)
    assert (event.model, event.error) == ("gpt-4o", "bad key")
    assert event.event_metadata is not None
    assert (event.event_metadata["spanName"], event.event_metadata["responseId"]) == ("chat", "r")


async def test_spans_that_are_no_genai_call_are_ignored(api, database, monitor):
    http = span({"http.request.method": "GET", "url.full": "https://example.com/"}, name="GET")
    response = await api.post(path(monitor.id), content=export(http).SerializeToString(), headers=PROTOBUF)

    assert response.status_code == 200 and response.content == b""
    assert await stored(database, monitor) == []
    # With nothing to store, the monitor is still looked up.
    unknown = await api.post(path("mon_unknown"), content=export(http).SerializeToString(), headers=PROTOBUF)
    assert unknown.status_code == 404


async def test_a_span_that_breaks_a_rule_is_rejected_alone_in_partial_success(api, database, monitor):
    bad = span({**CHAT, "gen_ai.usage.input_tokens": -3})
    request = export(bad, span(CHAT))

    response = await api.post(path(monitor.id), content=request.SerializeToString(), headers=PROTOBUF)

    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1
    assert partial.error_message == (
        f"span {TRACE_ID.hex()}:{bad.span_id.hex()}: gen_ai.usage.input_tokens: must be an integer from 0 "
        "to 1000000000 (got -3)"
    )
    assert len(await stored(database, monitor)) == 1


async def test_it_answers_415_for_a_content_type_or_encoding_otlp_has_not(api, monitor):
    body = export(span(CHAT)).SerializeToString()
    for headers in ({"Content-Type": "text/plain"}, {}, {**PROTOBUF, "Content-Encoding": "br"}):
        response = await api.post(path(monitor.id), content=body, headers=headers)
        assert response.status_code == 415, (headers, response.text)
        assert set(response.json()) == {"error"}


async def test_an_undecodable_body_is_a_400_in_the_requests_encoding(api, monitor):
    response = await api.post(path(monitor.id), content=b"\xff\xff\xff", headers=PROTOBUF)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/x-protobuf"
    status = status_pb2.Status.FromString(response.content)
    assert status.code == 3 and "not a protobuf ExportTraceServiceRequest" in status.message

    response = await api.post(path(monitor.id), content=b'{"resourceSpans": 7}', headers=JSON)
    assert response.status_code == 400
    assert "not an OTLP/JSON ExportTraceServiceRequest" in response.json()["error"]

    response = await api.post(
        path(monitor.id), content=b"not gzip", headers={**JSON, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 400 and "not valid gzip" in response.json()["error"]


async def test_an_unknown_monitor_is_a_404_and_another_types_or_a_paused_one_a_400(api, database, world):
    body = export(span(CHAT)).SerializeToString()
    response = await api.post(path("mon_doesnotexist"), content=body, headers=PROTOBUF)
    assert response.status_code == 404
    assert status_pb2.Status.FromString(response.content).message == "Monitor not found"

    http = await insert_monitor(database, world.org_a)
    paused = await insert_llm_monitor(database, world.org_b, is_active=False)
    for other, named in ((http, "is a HTTP monitor"), (paused, "is paused")):
        response = await api.post(path(other.id), content=otlp_json(span(CHAT)), headers=JSON)
        assert response.status_code == 400, response.text
        assert named in response.json()["error"] and response.json()["error"].startswith("monitorId: ")
    assert await stored(database, http) == [] and await stored(database, paused) == []


async def test_over_the_daily_limit_nothing_stored_is_a_429_and_some_stored_a_partial_success(
    api, database, monitor, clock
):
    limit = limits_for("FREE").ai_events_per_day
    now = clock()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    async with database.session() as session:
        session.add(AiDailyUsage(org_id=monitor.org_id, day=day, events=limit - 1))
        await session.commit()

    two = export(span(CHAT), span(CHAT)).SerializeToString()
    response = await api.post(path(monitor.id), content=two, headers=PROTOBUF)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1 and "Daily AI event limit reached" in partial.error_message

    response = await api.post(
        path(monitor.id), content=export(span(CHAT)).SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 429
    seconds_left = (day + timedelta(days=1) - now).total_seconds()
    assert 1 <= int(response.headers["retry-after"]) <= seconds_left + 1
    assert status_pb2.Status.FromString(response.content).code == 8
    assert len(await stored(database, monitor)) == 1


async def test_a_body_over_the_limit_is_a_413_as_sent_or_once_inflated(api, settings, monitor):
    bomb = gzip.compress(bytes(settings.max_body_bytes + 1))
    response = await api.post(
        path(monitor.id), content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413 and "once inflated" in response.json()["error"]

    response = await api.post(path(monitor.id), content=bytes(settings.max_body_bytes + 1), headers=PROTOBUF)
    assert response.status_code == 413
