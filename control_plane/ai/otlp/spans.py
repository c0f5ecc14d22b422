"""OpenTelemetry GenAI spans as LLM events: which spans are LLM calls, which are retrievals, and what
each one says, read as the GenAI semantic conventions name it (and as OpenLLMetry and OpenLIT did
before those names settled).

A span is an LLM call when it names a provider (`gen_ai.provider.name`, or the older
`gen_ai.system`) and a model, unless its operation is an agent's, a tool's or a retrieval (those
wrap or feed LLM calls, which have spans of their own). A retrieval is a `retrieval` operation or a
vector database's query (OpenLLMetry's `db.system` chroma/pinecone/..., OpenLIT's `db.system.name`):
its documents, their scores and its duration become the RAG figures of the LLM call of its trace
that came next. Other spans are not ours and are skipped. A span whose values break a rule
(negative tokens, a status code that is none) is rejected alone, never the whole export.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from control_plane.ai.events import AiEventIn
from control_plane.models.ai import SOURCE_OTLP

MAX_TOKENS = 1_000_000_000  # per call: far above any context window, far below the columns' sums
_PROVIDER_MAX, _MODEL_MAX, _ERROR_MAX, _METADATA_TEXT_MAX = 64, 200, 2000, 256

# Operations whose spans wrap LLM calls (an agent's turn, a tool) or feed them: their token
# figures, when they carry any, are their children's again.
_NOT_CALLS = frozenset(
    {"invoke_agent", "create_agent", "execute_tool", "invoke_workflow", "retrieval", "vectordb", "framework"}
)
_RETRIEVALS = frozenset({"retrieval", "vectordb"})  # vectordb: OpenLIT's
_VECTOR_DATABASES = frozenset(
    {
        "chroma",
        "chromadb",
        "pinecone",
        "qdrant",
        "weaviate",
        "milvus",
        "lancedb",
        "marqo",
        "pgvector",
        "faiss",
    }
)
_QUERIES = frozenset({"query", "search", "similarity_search", "query_points", "hybrid_search"})
_RESULT_EVENT = "db.query.result"  # OpenLLMetry: one event per document a vector query returned
# The conventions' provider names that price lists call otherwise.
_PROVIDERS = {
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "x_ai": "x-ai",
    "mistral_ai": "mistral",
}


class Rejected(Exception):
    """A span's value broke a rule: the message names the attribute and the rule."""


@dataclass(frozen=True, slots=True)
class Mapped:
    events: list[AiEventIn]
    rejected: list[str]  # one line per rejected span: "span <traceId>:<spanId>: <attribute>: <rule>"


@dataclass(slots=True)
class _Call:
    trace_id: bytes
    start: int
    end: int
    fields: dict[str, Any]
    retrievals: list[_Retrieval] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Retrieval:
    trace_id: bytes
    end: int
    documents: int | None
    scores: list[float] | None  # None: no document came with a score in 0-1
    duration_ms: float


def events_of(request: ExportTraceServiceRequest, *, metadata_max_bytes: int) -> Mapped:
    """The LLM events of an export, in the order of their spans, and the spans rejected."""
    calls: list[_Call] = []
    retrievals: list[_Retrieval] = []
    rejected: list[str] = []
    for resource_spans in request.resource_spans:
        service = _text(_attributes(resource_spans.resource.attributes), "service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = _attributes(span.attributes)
                kind = _kind(span, attributes)
                if kind is None:
                    continue
                try:
                    if kind == "call":
                        calls.append(_call(span, attributes, service, metadata_max_bytes))
                    else:
                        retrievals.append(_retrieval(span, attributes))
                except Rejected as exc:
                    rejected.append(f"span {span.trace_id.hex()}:{span.span_id.hex()}: {exc}")
    _attach(retrievals, calls)
    return Mapped([_event(call) for call in calls], rejected)


def _kind(span: Span, attributes: Mapping[str, AnyValue]) -> str | None:
    operation = (_text(attributes, "gen_ai.operation.name") or "").lower()
    if operation in _RETRIEVALS:
        return "retrieval"
    database = (_text(attributes, "db.system.name", "db.system") or "").lower()
    if database in _VECTOR_DATABASES:
        queried = (_text(attributes, "db.operation.name", "db.operation") or "").lower() in _QUERIES
        if (
            queried
            or "db.vector.query.top_k" in attributes
            or any(e.name == _RESULT_EVENT for e in span.events)
        ):
            return "retrieval"
        return None
    if operation in _NOT_CALLS:
        return None
    if _provider_name(attributes) and _text(attributes, "gen_ai.response.model", "gen_ai.request.model"):
        return "call"
    return None


def _call(span: Span, attributes: Mapping[str, AnyValue], service: str | None, metadata_max: int) -> _Call:
    _check_ids(span)
    provider = _bounded(attributes, _PROVIDER_MAX, "gen_ai.provider.name", "gen_ai.system")
    model = _bounded(attributes, _MODEL_MAX, "gen_ai.response.model", "gen_ai.request.model")
    fields: dict[str, Any] = {
        "provider": _PROVIDERS.get(provider.lower(), provider.lower()),
        "model": model,
        "prompt_tokens": _count(attributes, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens") or 0,
        "completion_tokens": _count(
            attributes, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"
        )
        or 0,
        "total_tokens": _count(attributes, "llm.usage.total_tokens", "gen_ai.usage.total_tokens"),
        "cached_tokens": _count(
            attributes, "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"
        ),
        "reasoning_tokens": _count(
            attributes, "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens"
        ),
        "latency_ms": _duration_ms(span),
        "status_code": _status_code(attributes),
        "error": _error(span, attributes),
        "prompt_hash": _prompt_hash(attributes),
        "metadata": _metadata(span, attributes, service, metadata_max),
        "event_id": f"{span.trace_id.hex()}:{span.span_id.hex()}",
        "source": SOURCE_OTLP,
    }
    return _Call(span.trace_id, span.start_time_unix_nano, span.end_time_unix_nano, fields)


def _retrieval(span: Span, attributes: Mapping[str, AnyValue]) -> _Retrieval:
    _check_ids(span)
    documents: int | None = None
    scores: list[Any] = []
    listed = _documents(attributes.get("gen_ai.retrieval.documents"))
    if listed is not None:
        documents = len(listed)
        scores = [document.get("score") for document in listed if isinstance(document, dict)]
    else:
        results = [event for event in span.events if event.name == _RESULT_EVENT]
        if results:
            documents = len(results)
            scores = [_plain(_attributes(event.attributes).get("db.query.result.score")) for event in results]
        else:
            documents = _count(attributes, "db.response.returned_rows")
    relevance = [float(score) for score in scores if _is_number(score) and 0 <= score <= 1]
    return _Retrieval(
        span.trace_id,
        span.end_time_unix_nano,
        documents,
        relevance if relevance and len(relevance) == len(scores) else None,
        _duration_ms(span),
    )


def _attach(retrievals: Iterable[_Retrieval], calls: list[_Call]) -> None:
    """Each retrieval feeds one call of its trace, so its documents count once: the first call to
    start after it ended (the one its documents were for), else the trace's last call. Spans of one
    trace exported in different requests are not joined."""
    by_trace: dict[bytes, list[_Call]] = {}
    for call in calls:
        by_trace.setdefault(call.trace_id, []).append(call)
    for retrieval in retrievals:
        candidates = by_trace.get(retrieval.trace_id)
        if not candidates:
            continue
        after = [call for call in candidates if call.start >= retrieval.end]
        target = (
            min(after, key=lambda call: call.start) if after else max(candidates, key=lambda call: call.start)
        )
        target.retrievals.append(retrieval)


def _started(call: _Call) -> int:
    return call.start


def _event(call: _Call) -> AiEventIn:
    fields = call.fields
    if call.retrievals:
        counted = [r.documents for r in call.retrievals if r.documents is not None]
        scored = [r.scores for r in call.retrievals if r.scores is not None]
        scores = [score for batch in scored for score in batch]
        fields = {
            **fields,
            "rag_docs_retrieved": sum(counted) if counted else None,
            "rag_avg_relevance": round(sum(scores) / len(scores), 6) if scores else None,
            "rag_retrieval_ms": sum(r.duration_ms for r in call.retrievals),
        }
    return AiEventIn(**fields)


# --- attribute values -------------------------------------------------------------------------


def _attributes(key_values: Iterable[KeyValue]) -> dict[str, AnyValue]:
    return {key_value.key: key_value.value for key_value in key_values}


def _plain(value: AnyValue | None) -> Any:
    """An AnyValue as Python: str, int, float, bool, bytes, list or dict (None when empty)."""
    if value is None:
        return None
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_plain(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return {entry.key: _plain(entry.value) for entry in value.kvlist_value.values}
    return getattr(value, which)


def _text(attributes: Mapping[str, AnyValue], *names: str) -> str | None:
    """The first of `names` present as a non-blank scalar, as text."""
    for name in names:
        value = _plain(attributes.get(name))
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            text = _without_nul(str(value)).strip()
            if text:
                return text
    return None


def _count(attributes: Mapping[str, AnyValue], *names: str) -> int | None:
    """The first of `names` present, as a token (or document) count: an integer, or an integral
    double, or digits in a string (senders differ); anything else rejects the span."""
    for name in names:
        value = _plain(attributes.get(name))
        if value is None:
            continue
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                number = None
        if number is None or not 0 <= number <= MAX_TOKENS:
            shown = repr(value)[:40]
            raise Rejected(f"{name}: must be an integer from 0 to {MAX_TOKENS} (got {shown})")
        return number
    return None


def _without_nul(text: str) -> str:
    """PostgreSQL's text and JSON hold no NUL: one in a span would fail the whole group's write."""
    return text.replace("\x00", "") if "\x00" in text else text


def _bounded(attributes: Mapping[str, AnyValue], limit: int, *names: str) -> str:
    """The first of `names` present (the span has one: it is a call), at most `limit` characters."""
    name = next(name for name in names if _text(attributes, name))
    text = _text(attributes, name) or ""
    if len(text) > limit:
        raise Rejected(f"{name}: at most {limit} characters (got {len(text)})")
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _provider_name(attributes: Mapping[str, AnyValue]) -> str | None:
    return _text(attributes, "gen_ai.provider.name", "gen_ai.system")


def _check_ids(span: Span) -> None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        raise Rejected("traceId: must be 16 bytes (32 hex digits), not all zero")
    if len(span.span_id) != 8 or not any(span.span_id):
        raise Rejected("spanId: must be 8 bytes (16 hex digits), not all zero")


def _duration_ms(span: Span) -> float:
    if not span.start_time_unix_nano or not span.end_time_unix_nano:
        raise Rejected("startTimeUnixNano and endTimeUnixNano: both required")
    if span.end_time_unix_nano < span.start_time_unix_nano:
        raise Rejected("endTimeUnixNano: before startTimeUnixNano")
    return (span.end_time_unix_nano - span.start_time_unix_nano) / 1_000_000


def _status_code(attributes: Mapping[str, AnyValue]) -> int | None:
    value = _plain(attributes.get("http.response.status_code"))
    if value is None:
        return None
    try:
        code = int(value) if not isinstance(value, bool | float) or float(value).is_integer() else -1
    except (TypeError, ValueError):
        code = -1
    if not 100 <= code <= 599:
        raise Rejected(
            f"http.response.status_code: must be an HTTP status from 100 to 599 (got {value!r:.40})"
        )
    return code


def _error(span: Span, attributes: Mapping[str, AnyValue]) -> str | None:
    if span.status.code != Status.STATUS_CODE_ERROR:
        return None
    message = (
        _without_nul(span.status.message).strip() or _text(attributes, "error.type") or "span status ERROR"
    )
    return message[:_ERROR_MAX]


def _prompt_hash(attributes: Mapping[str, AnyValue]) -> str | None:
    """A hash of the prompt when the instrumentation recorded it (content capture is opt-in):
    `gen_ai.input.messages`, the older `gen_ai.prompt`, or OpenLLMetry's `gen_ai.prompt.N.*`."""
    for name in ("gen_ai.input.messages", "gen_ai.prompt"):
        value = _plain(attributes.get(name))
        if value is not None:
            text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
            return hashlib.sha256(text.encode()).hexdigest()
    indexed = sorted((name, value) for name, value in attributes.items() if name.startswith("gen_ai.prompt."))
    if not indexed:
        return None
    digest = hashlib.sha256()
    for name, value in indexed:
        digest.update(f"{name}={_plain(value)}\n".encode())
    return digest.hexdigest()


def _documents(value: AnyValue | None) -> list[Any] | None:
    """`gen_ai.retrieval.documents`: a JSON string (as the conventions write it) or an array."""
    documents = _plain(value)
    if isinstance(documents, str):
        try:
            documents = orjson.loads(documents)
        except orjson.JSONDecodeError:
            return None
    return documents if isinstance(documents, list) else None


def _metadata(
    span: Span, attributes: Mapping[str, AnyValue], service: str | None, limit: int
) -> dict[str, Any] | None:
    """What helps find the call again, most useful first; what does not fit `limit` is left out."""
    finish = _plain(attributes.get("gen_ai.response.finish_reasons"))
    candidates: list[tuple[str, Any]] = [
        ("traceId", span.trace_id.hex()),
        ("spanId", span.span_id.hex()),
        ("operation", _text(attributes, "gen_ai.operation.name", "llm.request.type")),
        ("serviceName", service),
        ("spanName", _without_nul(span.name).strip() or None),
        ("responseId", _text(attributes, "gen_ai.response.id")),
        ("conversationId", _text(attributes, "gen_ai.conversation.id")),
        ("agentName", _text(attributes, "gen_ai.agent.name")),
        (
            "finishReasons",
            [_without_nul(str(reason))[:64] for reason in finish[:10]] if isinstance(finish, list) else None,
        ),
    ]
    metadata: dict[str, Any] = {}
    for key, value in candidates:
        if value is None:
            continue
        metadata[key] = value[:_METADATA_TEXT_MAX] if isinstance(value, str) else value
        if len(orjson.dumps(metadata)) > limit:
            del metadata[key]
    return metadata or None
