"""LLM monitors for AI monitoring's tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from control_plane.core.ids import new_id
from control_plane.db import Database
from control_plane.domain import histogram
from control_plane.models import Monitor
from control_plane.models.ai import EVENT_SUCCESS, AiEvent, AiUsageRollup
from tests.factories import insert_monitor

# The least an ingest request's event needs: for tests whose subject is not the event itself.
MINIMAL_EVENT: dict[str, object] = {
    "provider": "openai",
    "model": "gpt-4o",
    "promptTokens": 1,
    "completionTokens": 1,
    "latencyMs": 1,
}


async def insert_llm_monitor(db: Database, org_id: str, **fields: object) -> Monitor:
    """An active LLM monitor of `org_id` (a row, not through the API), any column overridden."""
    values: dict[str, object] = {
        "name": "Chat assistant",
        "type": "LLM",
        "url": None,
        "regions": [],
        **fields,
    }
    return await insert_monitor(db, org_id, **values)


def rollup_row(monitor: Monitor, hour: datetime, model: str = "gpt-4o", **fields: Any) -> AiUsageRollup:
    """An hourly rollup of `monitor` as a row. `latencies` (a list of ms, one per event) give the
    events, latency sum and histogram unless those are given; any other column overridden."""
    latencies: list[float] = list(fields.pop("latencies", []))
    latency_histogram: histogram.Histogram = {}
    for latency in latencies:
        histogram.add(latency_histogram, latency)
    values: dict[str, Any] = {
        "monitor_id": monitor.id,
        "org_id": monitor.org_id,
        "hour": hour.replace(minute=0, second=0, microsecond=0),
        "provider": "openai",
        "model": model,
        "events": len(latencies),
        "latency_sum_ms": float(sum(latencies)),
        "latency_histogram": latency_histogram,
        **fields,
    }
    return AiUsageRollup(**values)


def ai_event_row(monitor: Monitor, created_at: datetime, **fields: Any) -> AiEvent:
    """A raw AI event of `monitor` as a row, any column overridden."""
    values: dict[str, Any] = {
        "id": new_id("evt"),
        "org_id": monitor.org_id,
        "monitor_id": monitor.id,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 150,
        "output_tokens": 80,
        "total_tokens": 230,
        "cost_usd": 0.0035,
        "latency_ms": 1200.0,
        "status": EVENT_SUCCESS,
        "created_at": created_at,
        **fields,
    }
    return AiEvent(**values)


async def insert_rows(db: Database, rows: list[Any]) -> None:
    async with db.session() as session:
        session.add_all(rows)
        await session.commit()


def priced_event(
    monitor: Monitor,
    created_at: datetime,
    *,
    provider: str = "openai",
    model: str = "gpt-4o",
    prompt: int = 150,
    completion: int = 80,
    cached: int | None = None,
    **fields: Any,
) -> AiEvent:
    """An event of `monitor` costing what the price data says (None for a model it does not know)."""
    from control_plane.ai.pricing import cost_usd

    cost = cost_usd(
        provider, model, created_at, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached
    )
    values: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
        "cached_tokens": cached,
        "cost_usd": cost,
        **fields,
    }
    return ai_event_row(monitor, created_at, **values)


async def insert_events_with_rollups(db: Database, events: list[AiEvent]) -> None:
    """`events` as rows, summed into their hourly rollups as the ingest does (added to any rollup
    already there), in one transaction."""
    rollups: dict[tuple[str, datetime, str, str], AiUsageRollup] = {}
    async with db.session() as session:
        session.add_all(events)
        for event in events:
            hour = event.created_at.replace(minute=0, second=0, microsecond=0)
            key = (event.monitor_id, hour, event.provider, event.model)
            rollup = rollups.get(key) or await session.get(AiUsageRollup, key)
            if rollup is None:
                rollup = AiUsageRollup(
                    monitor_id=event.monitor_id,
                    hour=hour,
                    provider=event.provider,
                    model=event.model,
                    org_id=event.org_id,
                    events=0,
                    errors=0,
                    input_tokens=0,
                    output_tokens=0,
                    total_tokens=0,
                    cached_tokens=0,
                    reasoning_tokens=0,
                    cost_usd=0.0,
                    unpriced_events=0,
                    latency_sum_ms=0.0,
                    latency_histogram={},
                    rag_events=0,
                    rag_docs_events=0,
                    rag_docs_sum=0,
                    rag_relevance_events=0,
                    rag_relevance_sum=0.0,
                    rag_retrieval_events=0,
                    rag_retrieval_ms_sum=0.0,
                    rag_context_events=0,
                    rag_context_tokens_sum=0,
                )
                session.add(rollup)
            rollups[key] = rollup
            _add_to_rollup(rollup, event)
        await session.commit()


def _add_to_rollup(rollup: AiUsageRollup, event: AiEvent) -> None:
    rollup.events += 1
    rollup.errors += event.status != EVENT_SUCCESS
    rollup.input_tokens += event.input_tokens
    rollup.output_tokens += event.output_tokens
    rollup.total_tokens += event.total_tokens
    rollup.cached_tokens += event.cached_tokens or 0
    rollup.reasoning_tokens += event.reasoning_tokens or 0
    if event.cost_usd is None:
        rollup.unpriced_events += 1
    else:
        rollup.cost_usd += event.cost_usd
    rollup.latency_sum_ms += event.latency_ms
    latencies = dict(rollup.latency_histogram)  # a new dict: the JSON column sees the change
    histogram.add(latencies, event.latency_ms)
    rollup.latency_histogram = latencies
    rag = (
        event.rag_docs_retrieved,
        event.rag_avg_relevance,
        event.rag_retrieval_ms,
        event.rag_context_tokens,
    )
    rollup.rag_events += any(value is not None for value in rag)
    if event.rag_docs_retrieved is not None:
        rollup.rag_docs_events += 1
        rollup.rag_docs_sum += event.rag_docs_retrieved
    if event.rag_avg_relevance is not None:
        rollup.rag_relevance_events += 1
        rollup.rag_relevance_sum += event.rag_avg_relevance
    if event.rag_retrieval_ms is not None:
        rollup.rag_retrieval_events += 1
        rollup.rag_retrieval_ms_sum += event.rag_retrieval_ms
    if event.rag_context_tokens is not None:
        rollup.rag_context_events += 1
        rollup.rag_context_tokens_sum += event.rag_context_tokens


def rollups_of(events: list[AiEvent]) -> list[AiUsageRollup]:
    """The hourly rollups the ingest would have written with `events` (their counts, tokens, cost
    and latencies), so reads that use both agree."""
    grouped: dict[tuple[str, datetime, str, str], list[AiEvent]] = {}
    for event in events:
        hour = event.created_at.replace(minute=0, second=0, microsecond=0)
        grouped.setdefault((event.monitor_id, hour, event.provider, event.model), []).append(event)
    rows = []
    for (monitor_id, hour, provider, model), group in grouped.items():
        latency_histogram: histogram.Histogram = {}
        for event in group:
            histogram.add(latency_histogram, event.latency_ms)
        rows.append(
            AiUsageRollup(
                monitor_id=monitor_id,
                org_id=group[0].org_id,
                hour=hour,
                provider=provider,
                model=model,
                events=len(group),
                errors=sum(event.status != EVENT_SUCCESS for event in group),
                total_tokens=sum(event.total_tokens for event in group),
                cost_usd=sum(event.cost_usd or 0.0 for event in group),
                latency_sum_ms=sum(event.latency_ms for event in group),
                latency_histogram=latency_histogram,
            )
        )
    return rows


async def add_spend(database: Database, org_id: str, monitor_id: str, hour: datetime, usd: float) -> None:
    """`usd` spent by the monitor in `hour`'s hour: a rollup row of its own."""
    async with database.session() as session:
        session.add(
            AiUsageRollup(
                monitor_id=monitor_id,
                org_id=org_id,
                hour=hour.replace(minute=0, second=0, microsecond=0),
                provider="openai",
                model=new_id("model"),  # a row of its own whatever else this hour has
                events=1,
                cost_usd=usd,
                latency_histogram={},
            )
        )
        await session.commit()
