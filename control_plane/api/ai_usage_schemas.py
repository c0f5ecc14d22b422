"""ai-usage and ai-events responses as the OpenAPI document states them: the reference's fields,
with how each figure is rounded; and the serializer of an event."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, with_config
from typing_extensions import TypedDict

from control_plane.api.responses import CLOSED, Data, Page, Timestamp, iso_at, one_of
from control_plane.models.ai import EVENT_ERROR, EVENT_SUCCESS, AiEvent

Usd = Annotated[
    float, Field(description="USD of the priced events (unpriced models add nothing), 6 decimals")
]
WholeMs = Annotated[
    int, Field(description="Milliseconds, rounded to whole ones; 0 when nothing was measured")
]


@with_config(CLOSED)
class ModelUsageOut(TypedDict):
    model: str
    count: int
    totalCost: Usd
    avgLatency: WholeMs


@with_config(CLOSED)
class HourlyUsageOut(TypedDict):
    """One UTC hour of the period; an hour without events is there with zeros."""

    hour: Annotated[Timestamp, Field(description="The hour's start, UTC")]
    events: int
    tokens: int
    cost: Usd


@with_config(CLOSED)
class RagStatsOut(TypedDict):
    """Each average is over the events that reported its field (0 when none did)."""

    totalRagEvents: Annotated[int, Field(description="Events with any RAG field")]
    avgRelevance: Annotated[float, Field(description="Mean ragAvgRelevance, 0-1, 3 decimals")]
    avgDocsRetrieved: Annotated[float, Field(description="Mean ragDocsRetrieved, 1 decimal")]
    avgRetrievalMs: WholeMs


@with_config(CLOSED)
class AiUsageOut(TypedDict):
    """The period's events, from the hourly rollups."""

    totalEvents: int
    totalTokens: int
    totalCost: Usd
    avgLatency: WholeMs
    p95Latency: Annotated[
        int,
        Field(description="Milliseconds, whole, from log-scale histograms (within ~5%); 0: no events"),
    ]
    errorRate: Annotated[
        float, Field(description="Percent of the events that failed, 2 decimals (1.2: 1.2%)")
    ]
    topModels: Annotated[
        list[ModelUsageOut], Field(description="Up to 10 models, most events first (ties by name)")
    ]
    hourlyUsage: Annotated[
        list[HourlyUsageOut],
        Field(description="Every hour of the period (24, 168 or 720), the current one last"),
    ]
    ragStats: RagStatsOut


@with_config(CLOSED)
class AiEventOut(TypedDict):
    id: str
    monitorId: str
    provider: str
    model: str
    inputTokens: int
    outputTokens: int
    totalTokens: int
    costUsd: Annotated[float | None, Field(description="USD; null when the model is unpriced")]
    latencyMs: float
    status: Annotated[str, one_of(EVENT_SUCCESS, EVENT_ERROR)]
    errorMessage: str | None
    createdAt: Timestamp


class AiUsageResponse(Data[AiUsageOut]):
    pass


class AiEventPageResponse(Page[AiEventOut]):
    pass


def ai_event_out(event: AiEvent) -> AiEventOut:
    return {
        "id": event.id,
        "monitorId": event.monitor_id,
        "provider": event.provider,
        "model": event.model,
        "inputTokens": event.input_tokens,
        "outputTokens": event.output_tokens,
        "totalTokens": event.total_tokens,
        "costUsd": event.cost_usd,
        "latencyMs": event.latency_ms,
        "status": event.status,
        "errorMessage": event.error,
        "createdAt": iso_at(event.created_at),
    }
