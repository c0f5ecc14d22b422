"""POST /api/ai/ingest's bodies (one event, or `{"events": [...]}`) validated into AiEventIn, and
its answers. The route reads the body itself: a batch answers each event on its own, so one bad
event is that event's 400, not the request's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import (
    BaseModel,
    Field,
    RootModel,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from control_plane.ai.events import AiEventIn
from control_plane.ai.ingest.committer import Accepted, OverLimit
from control_plane.api.schemas import NoControlCharacters, RequestModel, examples
from control_plane.settings import Settings

MAX_COUNT = 1_000_000_000  # tokens, documents: no LLM call reports more
MAX_MS = 86_400_000.0  # a day: no LLM call (or retrieval) takes longer

Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Milliseconds = Annotated[float, Field(ge=0, le=MAX_MS, allow_inf_nan=False)]

# What each field must be, as a 400 says it (whatever pydantic's own words for the failure).
RULES: dict[str, str] = {
    "provider": "must be a string of 1-64 characters without control characters",
    "model": "must be a string of 1-200 characters without control characters",
    "promptTokens": f"must be an integer >= 0 (at most {MAX_COUNT})",
    "completionTokens": f"must be an integer >= 0 (at most {MAX_COUNT})",
    "totalTokens": f"must be an integer >= 0 (at most {MAX_COUNT})",
    "cachedTokens": f"must be an integer >= 0 (at most {MAX_COUNT}), part of promptTokens",
    "reasoningTokens": f"must be an integer >= 0 (at most {MAX_COUNT}), part of completionTokens",
    "ragDocsRetrieved": f"must be an integer >= 0 (at most {MAX_COUNT})",
    "ragContextTokens": f"must be an integer >= 0 (at most {MAX_COUNT})",
    "latencyMs": "must be a finite number of milliseconds >= 0 (at most 86400000, a day)",
    "ragRetrievalMs": "must be a finite number of milliseconds >= 0 (at most 86400000, a day)",
    "statusCode": "must be an integer HTTP status from 100 to 599",
    "error": "must be a string of at most 10000 characters",
    "promptHash": "must be a string of 1-128 characters without control characters",
    "ragAvgRelevance": "must be a number from 0 to 1",
    "eventId": "must be a string of 1-128 printable ASCII characters",
}
OPTIONAL = (
    "totalTokens",
    "statusCode",
    "error",
    "promptHash",
    "metadata",
    "ragDocsRetrieved",
    "ragAvgRelevance",
    "ragRetrievalMs",
    "ragContextTokens",
    "cachedTokens",
    "reasoningTokens",
    "eventId",
)
_METADATA_BYTES = "ai_metadata_max_bytes"
_METADATA_DEPTH = "ai_metadata_max_depth"


class AiEventCreate(RequestModel):
    """One LLM call, as the reference's ingest takes it (plus cachedTokens, reasoningTokens and
    eventId). An optional field sent as null is as if absent."""

    model_config = examples(
        {
            "provider": "openai",
            "model": "gpt-4o",
            "promptTokens": 150,
            "completionTokens": 80,
            "latencyMs": 1200,
        }
    )
    nullable: ClassVar[frozenset[str]] = frozenset(OPTIONAL)

    provider: Annotated[str, StringConstraints(min_length=1, max_length=64), NoControlCharacters]
    model: Annotated[str, StringConstraints(min_length=1, max_length=200), NoControlCharacters]
    promptTokens: Count
    completionTokens: Count
    latencyMs: Milliseconds
    totalTokens: Count | None = None
    statusCode: Annotated[int, Field(ge=100, le=599)] | None = None
    error: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    promptHash: (
        Annotated[str, StringConstraints(min_length=1, max_length=128), NoControlCharacters] | None
    ) = None
    metadata: dict[str, Any] | None = Field(
        default=None, description="Any JSON object, of bounded size (16 KiB) and nesting (5 levels)"
    )
    ragDocsRetrieved: Count | None = None
    ragAvgRelevance: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    ragRetrievalMs: Milliseconds | None = None
    ragContextTokens: Count | None = None
    cachedTokens: Count | None = Field(
        default=None, description="Of promptTokens: read from the prompt cache"
    )
    reasoningTokens: Count | None = Field(default=None, description="Of completionTokens: spent reasoning")
    eventId: (
        Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x20-\x7e]+$")] | None
    ) = Field(default=None, description="The client's id for the event: a retry with it is stored once")

    @field_validator("metadata")
    @classmethod
    def _bounded(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if value is None:
            return None
        context = info.context or {}
        max_bytes = int(context.get(_METADATA_BYTES, 16_384))
        max_depth = int(context.get(_METADATA_DEPTH, 5))
        if _depth(value) > max_depth:
            raise ValueError(f"metadata: must be nested at most {max_depth} levels deep")
        size = len(orjson.dumps(value))
        if size > max_bytes:
            raise ValueError(f"metadata: must be at most {max_bytes} bytes as JSON (got {size})")
        return value

    @model_validator(mode="after")
    def _parts(self) -> AiEventCreate:
        if self.cachedTokens is not None and self.cachedTokens > self.promptTokens:
            raise ValueError("cachedTokens: must not exceed promptTokens (cached tokens are part of them)")
        if self.reasoningTokens is not None and self.reasoningTokens > self.completionTokens:
            raise ValueError(
                "reasoningTokens: must not exceed completionTokens (reasoning tokens are part of them)"
            )
        return self

    def event(self) -> AiEventIn:
        return AiEventIn(
            provider=self.provider,
            model=self.model,
            prompt_tokens=self.promptTokens,
            completion_tokens=self.completionTokens,
            latency_ms=float(self.latencyMs),
            total_tokens=self.totalTokens,
            status_code=self.statusCode,
            error=self.error,
            prompt_hash=self.promptHash,
            metadata=self.metadata,
            rag_docs_retrieved=self.ragDocsRetrieved,
            rag_avg_relevance=None if self.ragAvgRelevance is None else float(self.ragAvgRelevance),
            rag_retrieval_ms=None if self.ragRetrievalMs is None else float(self.ragRetrievalMs),
            rag_context_tokens=self.ragContextTokens,
            cached_tokens=self.cachedTokens,
            reasoning_tokens=self.reasoningTokens,
            event_id=self.eventId,
        )


class AiEventBatch(RequestModel):
    """Up to the server's batch limit (1,000 by default) of events, each answered on its own."""

    events: list[AiEventCreate] = Field(min_length=1)


class AiIngestBody(RootModel[AiEventCreate | AiEventBatch]):
    """The ingest's body as documented: one event, or a batch."""


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


@dataclass(frozen=True, slots=True)
class IngestBody:
    """A parsed body: `events` holds each event, or the 400 message of an invalid one (a batch
    only: a single invalid event is the request's 400)."""

    batch: bool
    events: list[AiEventIn | str]


class BodyError(Exception):
    """The whole body is a 400 (not JSON, not an object, a bad batch, a bad single event)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_body(body: bytes, settings: Settings) -> IngestBody:
    """The ingest's body, validated (the no-op bench app calls this too, to compare like with like)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BodyError("Request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise BodyError('Request body must be a JSON object: one event, or {"events": [...]}')
    context = {
        _METADATA_BYTES: settings.ai_metadata_max_bytes,
        _METADATA_DEPTH: settings.ai_metadata_max_depth,
    }
    if "events" not in document:
        parsed = _event(document, context, "")
        if isinstance(parsed, str):
            raise BodyError(parsed)
        return IngestBody(batch=False, events=[parsed])
    events = document["events"]
    extra = sorted(set(document) - {"events"})
    if extra:
        raise BodyError(f'{extra[0]}: unknown field (a batch is {{"events": [...]}} alone)')
    limit = settings.ai_ingest_batch_max
    if not isinstance(events, list) or not 1 <= len(events) <= limit:
        raise BodyError(f"events: must be an array of 1 to {limit} events")
    return IngestBody(
        batch=True, events=[_event(item, context, f"events[{i}].") for i, item in enumerate(events)]
    )


def _event(document: Any, context: dict[str, int], where: str) -> AiEventIn | str:
    if not isinstance(document, dict):
        return f"{where.rstrip('.') or 'Request body'}: must be a JSON object (an event)"
    try:
        return AiEventCreate.model_validate(document, context=context).event()
    except ValidationError as exc:
        return where + _describe(exc.errors(include_url=False, include_input=False)[0])


def _describe(error: Any) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    kind = error.get("type", "")
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if not loc:
        return message if ":" in message else f"Request body: {message}"
    field = loc[0]
    if kind == "missing":
        return f"{field}: field required"
    if kind == "extra_forbidden":
        return f"{field}: unknown field"
    if field == "metadata":
        return message if message.startswith("metadata") else "metadata: must be a JSON object"
    rule = RULES.get(field)
    return f"{field}: {rule}" if rule else f"{'.'.join(loc)}: {message}"


@with_config({"extra": "forbid"})
class AcceptedOut(TypedDict):
    id: str
    costUsd: float | None
    dailyEventsUsed: int
    dailyEventsLimit: int


@with_config({"extra": "forbid"})
class EventErrorOut(TypedDict):
    error: str
    status: Literal[400, 429]


class AcceptedResponse(BaseModel):
    model_config = {"extra": "forbid"}
    data: AcceptedOut


class BatchResponse(BaseModel):
    model_config = {"extra": "forbid"}
    data: list[AcceptedOut | EventErrorOut]


def accepted_out(answer: Accepted) -> AcceptedOut:
    return {
        "id": answer.id,
        "costUsd": answer.cost_usd,
        "dailyEventsUsed": answer.daily_events_used,
        "dailyEventsLimit": answer.daily_events_limit,
    }


def answer_out(answer: Accepted | OverLimit | str) -> AcceptedOut | EventErrorOut:
    if isinstance(answer, Accepted):
        return accepted_out(answer)
    if isinstance(answer, OverLimit):
        return {"error": answer.error, "status": 429}
    return {"error": answer, "status": 400}


def finite(value: float) -> bool:
    return math.isfinite(value)
