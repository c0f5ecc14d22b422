"""OTLP spans as LLM events (control_plane/ai/otlp/spans.py) and the OTLP/HTTP wire (ai/otlp/wire.py):
pure, no server, no database."""

from __future__ import annotations

import base64
import gzip
import hashlib

import orjson
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2  # googleapis-common-protos: the exporters' dependency, not ours
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from control_plane.ai.otlp import wire as otlp
from control_plane.ai.otlp.spans import events_of
from control_plane.core.errors import InvalidInput
from tests.ai.otlp_support import CHAT, TRACE_ID, export, span

OTHER_TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def mapped(*spans, limit: int = 16_384):
    return events_of(export(*spans), metadata_max_bytes=limit)


def test_it_maps_a_chat_span_of_the_current_conventions():
    chat = span(
        {
            **CHAT,
            "gen_ai.usage.cache_read.input_tokens": 100,
            "gen_ai.usage.reasoning.output_tokens": 30,
            "gen_ai.response.id": "chatcmpl-123",
            "gen_ai.response.finish_reasons": ["stop"],
        },
        duration_ms=1234.5,
    )
    [event] = mapped(chat).events
    assert (event.provider, event.model) == (
        "openai",
        "gpt-4o-2024-08-06",
    )  # what answered, not what was asked
    assert (event.prompt_tokens, event.completion_tokens, event.total_tokens) == (150, 80, None)
    assert (event.cached_tokens, event.reasoning_tokens) == (100, 30)
    assert event.latency_ms == 1234.5
    assert event.error is None and event.status == "success" and event.status_code is None
    assert event.event_id == f"{TRACE_ID.hex()}:{chat.span_id.hex()}"
    assert event.source == "otlp"
    assert event.metadata == {
        "traceId": TRACE_ID.hex(),
        "spanId": chat.span_id.hex(),
        "operation": "chat",
        "serviceName": "chat-api",
        "spanName": "chat gpt-4o",
        "responseId": "chatcmpl-123",
        "finishReasons": ["stop"],
    }
    assert not event.has_rag and event.prompt_hash is None


def test_it_reads_the_older_names_and_openllmetrys():
    old = span(
        {
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-sonnet-4-20250514",
            "llm.request.type": "chat",
            "gen_ai.usage.prompt_tokens": 1200,
            "gen_ai.usage.completion_tokens": 300,
            "llm.usage.total_tokens": 1500,
            "gen_ai.usage.cache_read_input_tokens": 1000,
            "gen_ai.usage.reasoning_tokens": 50,
        }
    )
    [event] = mapped(old).events
    assert (event.provider, event.model) == ("anthropic", "claude-sonnet-4-20250514")
    assert (event.prompt_tokens, event.completion_tokens, event.total_tokens) == (1200, 300, 1500)
    assert (event.cached_tokens, event.reasoning_tokens) == (1000, 50)
    assert event.metadata is not None and event.metadata["operation"] == "chat"


def test_the_current_name_wins_over_the_older_one():
    both = span({**CHAT, "gen_ai.system": "azure", "gen_ai.usage.prompt_tokens": 9})
    [event] = mapped(both).events
    assert (event.provider, event.prompt_tokens) == ("openai", 150)


def test_it_prices_the_conventions_provider_names_under_the_price_lists_names():
    vertex = span(
        {**CHAT, "gen_ai.provider.name": "gcp.vertex_ai", "gen_ai.response.model": "gemini-2.0-flash"}
    )
    bedrock = span({**CHAT, "gen_ai.provider.name": "aws.bedrock"})
    assert [event.provider for event in mapped(vertex, bedrock).events] == ["google", "aws"]


def test_it_takes_counts_sent_as_strings_or_integral_doubles():
    loose = span({**CHAT, "gen_ai.usage.input_tokens": " 150", "gen_ai.usage.output_tokens": 80.0})
    [event] = mapped(loose).events
    assert (event.prompt_tokens, event.completion_tokens) == (150, 80)


def test_a_call_without_usage_counts_zero_tokens():
    bare = span({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"})
    [event] = mapped(bare).events
    assert (event.prompt_tokens, event.completion_tokens, event.tokens) == (0, 0, 0)


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"gen_ai.usage.input_tokens": -1}, "gen_ai.usage.input_tokens: must be an integer from 0"),
        ({"gen_ai.usage.output_tokens": "many"}, "gen_ai.usage.output_tokens: must be an integer from 0"),
        ({"gen_ai.usage.output_tokens": 1.5}, "gen_ai.usage.output_tokens: must be an integer from 0"),
        ({"gen_ai.usage.input_tokens": True}, "gen_ai.usage.input_tokens: must be an integer from 0"),
        ({"gen_ai.usage.input_tokens": 10**10}, "gen_ai.usage.input_tokens: must be an integer from 0"),
        ({"gen_ai.usage.cache_read.input_tokens": -5}, "gen_ai.usage.cache_read.input_tokens: must be"),
        ({"http.response.status_code": 999}, "http.response.status_code: must be an HTTP status"),
        ({"http.response.status_code": "teapot"}, "http.response.status_code: must be an HTTP status"),
        ({"gen_ai.response.model": "m" * 201}, "gen_ai.response.model: at most 200 characters"),
    ],
)
def test_it_rejects_the_span_whose_value_breaks_a_rule_and_keeps_the_others(attributes, reason):
    bad = span({**CHAT, **attributes})
    good = span(CHAT)
    result = mapped(bad, good)
    assert [event.event_id for event in result.events] == [f"{TRACE_ID.hex()}:{good.span_id.hex()}"]
    [line] = result.rejected
    assert line.startswith(f"span {TRACE_ID.hex()}:{bad.span_id.hex()}: ") and reason in line, line


def test_it_rejects_spans_without_ids_or_with_their_times_reversed():
    no_trace = span(CHAT, trace_id=b"")
    zero_span = span(CHAT, span_id=bytes(8))
    reversed_times = span(CHAT)
    reversed_times.end_time_unix_nano = reversed_times.start_time_unix_nano - 1
    result = mapped(no_trace, zero_span, reversed_times)
    assert result.events == []
    assert [line.split(": ", 1)[1] for line in result.rejected] == [
        "traceId: must be 16 bytes (32 hex digits), not all zero",
        "spanId: must be 8 bytes (16 hex digits), not all zero",
        "endTimeUnixNano: before startTimeUnixNano",
    ]


def test_an_error_status_is_the_events_error():
    failed = span({**CHAT, "http.response.status_code": 429}, error="Rate limit reached for gpt-4o")
    typed = span({**CHAT, "error.type": "openai.APITimeoutError"}, error="")
    ok_with_status = span({**CHAT, "http.response.status_code": "200"})
    first, second, third = mapped(failed, typed, ok_with_status).events
    assert (first.error, first.status_code, first.status) == ("Rate limit reached for gpt-4o", 429, "error")
    assert (second.error, second.status) == ("openai.APITimeoutError", "error")
    assert (third.error, third.status_code, third.status) == (None, 200, "success")


def test_spans_that_are_no_llm_call_are_skipped_not_rejected():
    http = span({"http.request.method": "POST", "url.full": "https://api.example.com"}, name="POST")
    agent = span({**CHAT, "gen_ai.operation.name": "invoke_agent"}, name="invoke_agent helper")
    tool = span({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"})
    no_model = span({"gen_ai.provider.name": "openai"})
    vector_write = span({"db.system": "chroma", "db.operation": "add"}, name="chroma.add")
    result = mapped(http, agent, tool, no_model, vector_write)
    assert result.events == [] and result.rejected == []


def test_a_retrieval_feeds_the_llm_call_of_its_trace_that_followed_it():
    documents = orjson.dumps([{"id": "doc_1", "score": 0.9}, {"id": "doc_2", "score": 0.7}]).decode()
    retrieval = span(
        {"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.documents": documents},
        name="retrieval docs",
        start_ms=0,
        duration_ms=120,
    )
    before = span(CHAT, start_ms=-500, duration_ms=400)  # a call before the retrieval: not its
    after = span(CHAT, start_ms=130, duration_ms=900)
    elsewhere = span(CHAT, trace_id=OTHER_TRACE, start_ms=130)
    first, second, third = mapped(before, retrieval, after, elsewhere).events
    assert not first.has_rag and not third.has_rag
    assert (second.rag_docs_retrieved, second.rag_avg_relevance, second.rag_retrieval_ms) == (2, 0.8, 120.0)


def test_openllmetrys_vector_query_results_are_the_documents_and_their_scores():
    query = span(
        {"db.system": "chroma", "db.operation": "query", "db.vector.query.top_k": 3},
        name="chroma.query",
        duration_ms=40,
        events=[
            ("db.query.result", {"db.query.result.id": "a", "db.query.result.score": 0.5}),
            ("db.query.result", {"db.query.result.id": "b", "db.query.result.score": 1}),
            ("db.query.embeddings", {"db.query.embeddings.vector": "[0.1]"}),
        ],
    )
    [event] = mapped(query, span(CHAT, start_ms=50)).events
    assert (event.rag_docs_retrieved, event.rag_avg_relevance, event.rag_retrieval_ms) == (2, 0.75, 40.0)


def test_openlits_vector_query_counts_its_returned_rows_and_has_no_relevance():
    query = span(
        {"db.system.name": "pinecone", "db.operation.name": "query", "db.response.returned_rows": 4},
        duration_ms=25,
    )
    [event] = mapped(query, span(CHAT, start_ms=30)).events
    assert (event.rag_docs_retrieved, event.rag_avg_relevance, event.rag_retrieval_ms) == (4, None, 25.0)


def test_scores_that_are_no_relevance_give_none():
    documents = [{"id": "a", "score": 12.5}, {"id": "b", "score": 3.0}]  # BM25: not 0-1
    retrieval = span({"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.documents": documents})
    [event] = mapped(retrieval, span(CHAT, start_ms=2000)).events
    assert (event.rag_docs_retrieved, event.rag_avg_relevance) == (2, None)


def test_two_retrievals_before_one_call_add_up():
    first = span({"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.documents": [{"score": 0.2}]})
    second = span(
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.retrieval.documents": [{"score": 0.4}, {"score": 0.6}],
        },
        start_ms=1300,
        duration_ms=100,
    )
    [event] = mapped(first, second, span(CHAT, start_ms=1500)).events
    assert (event.rag_docs_retrieved, event.rag_avg_relevance) == (3, 0.4)
    assert event.rag_retrieval_ms == 1234.5 + 100


def test_a_retrieval_with_a_negative_count_is_rejected():
    query = span({"db.system.name": "qdrant", "db.operation.name": "search", "db.response.returned_rows": -1})
    result = mapped(query, span(CHAT, start_ms=2000))
    [event] = result.events
    assert not event.has_rag
    assert len(result.rejected) == 1 and "db.response.returned_rows: must be" in result.rejected[0]


def test_the_same_prompt_hashes_the_same():
    messages = '[{"role": "user", "parts": [{"type": "text", "content": "Hello"}]}]'
    one, two, other = mapped(
        span({**CHAT, "gen_ai.input.messages": messages}),
        span({**CHAT, "gen_ai.input.messages": messages}),
        span({**CHAT, "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Hello"}),
    ).events
    assert one.prompt_hash == two.prompt_hash == hashlib.sha256(messages.encode()).hexdigest()
    assert other.prompt_hash is not None and other.prompt_hash != one.prompt_hash


def test_metadata_keeps_what_fits_the_limit():
    [event] = mapped(span({**CHAT, "gen_ai.response.id": "r" * 200}), limit=120).events
    assert event.metadata is not None
    assert len(orjson.dumps(event.metadata)) <= 120
    assert set(event.metadata) == {"traceId", "spanId", "operation", "serviceName"}


# --- the wire -------------------------------------------------------------------------------------


def otlp_json(request) -> dict:
    """OTLP/JSON as an exporter writes it: the proto3 mapping with hex ids."""
    document = json_format.MessageToDict(request)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for each in scope_spans["spans"]:
                for key in ("traceId", "spanId"):
                    each[key] = base64.b64decode(each[key]).hex()
    return document


def test_otlp_json_with_hex_ids_decodes_as_the_protobuf_does():
    request = export(span(CHAT, error="boom"))
    document = otlp_json(request)
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"] = 3  # enums as integers
    document["resourceSpans"][0]["unknownField"] = {"ignored": True}
    decoded = otlp.decode(orjson.dumps(document), otlp.Encoding.JSON)
    assert decoded == otlp.decode(request.SerializeToString(), otlp.Encoding.PROTOBUF) == request


def test_it_refuses_ids_that_are_not_hex_naming_where():
    document = otlp_json(export(span(CHAT)))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "not-hex!"
    with pytest.raises(
        InvalidInput, match=r"resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.spanId: must be hex"
    ):
        otlp.decode(orjson.dumps(document), otlp.Encoding.JSON)


@pytest.mark.parametrize(
    ("body", "encoding", "message"),
    [
        (b"\xff\xff\xff", otlp.Encoding.PROTOBUF, "not a protobuf ExportTraceServiceRequest"),
        (b"{not json", otlp.Encoding.JSON, "Request body is not valid JSON"),
        (b"[1, 2]", otlp.Encoding.JSON, "must be a JSON object"),
        (b'{"resourceSpans": "no"}', otlp.Encoding.JSON, "not an OTLP/JSON ExportTraceServiceRequest"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
            otlp.Encoding.JSON,
            "not an OTLP/JSON ExportTraceServiceRequest",
        ),
    ],
)
def test_an_undecodable_body_is_invalid_input(body, encoding, message):
    with pytest.raises(InvalidInput, match=message):
        otlp.decode(body, encoding)


def test_a_deeply_nested_json_value_is_invalid_input_not_a_crash():
    value = '{"arrayValue": {"values": [' * 300 + '{"stringValue": "x"}' + "]}}" * 300
    document = '{"resourceSpans": [{"resource": {"attributes": [{"key": "deep", "value": ' + value + "}]}}]}"
    with pytest.raises(InvalidInput):
        otlp.decode(document.encode(), otlp.Encoding.JSON)


def test_gzip_is_inflated_and_bounded():
    body = export(span(CHAT)).SerializeToString()
    assert otlp.inflate(gzip.compress(body), "gzip", 1024) == body
    assert otlp.inflate(gzip.compress(body[:10]) + gzip.compress(body[10:]), "GZIP", 1024) == body
    assert otlp.inflate(body, None, 1024) == body == otlp.inflate(body, "identity", 1024)
    bomb = gzip.compress(bytes(10_000_000))
    assert len(bomb) < 20_000
    with pytest.raises(otlp.InflatedTooLarge, match=r"once inflated \(limit 1024 bytes\)"):
        otlp.inflate(bomb, "gzip", 1024)
    with pytest.raises(InvalidInput, match="not valid gzip"):
        otlp.inflate(b"plain bytes", "gzip", 1024)
    with pytest.raises(InvalidInput, match="ends early"):
        otlp.inflate(gzip.compress(body)[:-12], "gzip", 1024)
    with pytest.raises(otlp.UnsupportedEncoding, match="Content-Encoding: must be gzip or none"):
        otlp.inflate(body, "br", 1024)


def test_the_content_type_picks_the_encoding():
    assert otlp.encoding_of("application/x-protobuf") is otlp.Encoding.PROTOBUF
    assert otlp.encoding_of("Application/JSON; charset=utf-8") is otlp.Encoding.JSON
    for other in (None, "", "text/plain", "application/grpc"):
        with pytest.raises(otlp.UnsupportedEncoding, match="Content-Type: must be application/x-protobuf"):
            otlp.encoding_of(other)


def test_answers_are_in_the_requests_encoding():
    assert otlp.export_response(otlp.Encoding.JSON) == b"{}"
    assert otlp.export_response(otlp.Encoding.PROTOBUF) == b""
    partial = ExportTraceServiceResponse.FromString(otlp.export_response(otlp.Encoding.PROTOBUF, 2, "why"))
    assert (partial.partial_success.rejected_spans, partial.partial_success.error_message) == (2, "why")
    assert orjson.loads(otlp.export_response(otlp.Encoding.JSON, 2, "why")) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "why"}
    }
    status = status_pb2.Status.FromString(
        otlp.error_body(otlp.Encoding.PROTOBUF, 404, "Monitor not found" * 20)
    )
    assert (status.code, status.message) == (5, "Monitor not found" * 20)
    assert orjson.loads(otlp.error_body(otlp.Encoding.JSON, 400, "bad")) == {"error": "bad"}
