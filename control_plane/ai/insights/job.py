"""The insights worker: for each LLM monitor with usage in the last 24 h, its aggregates gathered in
SQL (rollups where they suffice; GROUP BY over its raw events, on the (monitor_id, created_at)
index, for prompt hashes, short calls and RAG), the rules applied (rules.py) and the findings
kept (store.py).

The window starts on the hour 24 h before `now` (rollups are hourly, so both read the same span)
and runs to `now`; savings are scaled from its length to a day. The previous window is the 24 h
before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.ai.insights import rules as insights
from control_plane.ai.insights import store as insights_store
from control_plane.ai.insights.usage import (
    FailedCall,
    FailureBurst,
    ModelWindow,
    PromptRepeats,
    RagUsage,
    RepeatedPrompt,
    ShortCalls,
    Usage,
    burst_of,
)
from control_plane.db import Database
from control_plane.domain import histogram
from control_plane.models import Monitor
from control_plane.models.ai import EVENT_ERROR, AiEvent, AiInsight, AiUsageRollup

WINDOW = timedelta(hours=24)
STORM_CANDIDATES = 20  # prompt hashes with the most failures whose failure times are read
STORM_FAILURES_READ = 2000  # failures read per candidate hash, at most


@dataclass(frozen=True, slots=True)
class InsightsPass:
    monitors: int
    findings: int


async def generate_insights(db: Database, now: datetime) -> InsightsPass:
    """One pass over every LLM monitor with usage in the window (or insights still active: those
    whose usage stopped have nothing that holds any more). A transaction per monitor."""
    since = now.replace(minute=0, second=0, microsecond=0) - WINDOW
    async with db.session() as session:
        monitors = await _monitors_to_read(session, since)
    total = 0
    for monitor_id, org_id in monitors:
        async with db.session() as session:
            usage = await gather_usage(session, monitor_id, since, now)
            found = insights.findings(usage, now)
            await insights_store.keep_findings(session, monitor_id, org_id, found, now=now)
            total += len(found)
    return InsightsPass(len(monitors), total)


async def _monitors_to_read(session: AsyncSession, since: datetime) -> list[tuple[str, str]]:
    used = select(AiUsageRollup.monitor_id.label("monitor_id")).where(AiUsageRollup.hour >= since)
    with_insights = select(AiInsight.monitor_id.label("monitor_id")).where(AiInsight.active.is_(True))
    candidates = union(used, with_insights).subquery()
    rows = await session.execute(
        select(Monitor.id, Monitor.org_id)
        .where(Monitor.id.in_(select(candidates.c.monitor_id)), Monitor.type == "LLM")
        .order_by(Monitor.id)
    )
    return [(row.id, row.org_id) for row in rows]


async def gather_usage(session: AsyncSession, monitor_id: str, since: datetime, now: datetime) -> Usage:
    return Usage(
        window=now - since,
        current=await _rollups(session, monitor_id, since, now),
        previous=await _rollups(session, monitor_id, since - WINDOW, since),
        short_calls=await _short_calls(session, monitor_id, since, now),
        prompts=await _prompt_repeats(session, monitor_id, since, now),
        bursts=await _failure_bursts(session, monitor_id, since, now),
        rag=await _rag_usage(session, monitor_id, since, now),
    )


async def _rollups(
    session: AsyncSession, monitor_id: str, start: datetime, end: datetime
) -> list[ModelWindow]:
    rows = await session.execute(
        select(
            AiUsageRollup.provider,
            AiUsageRollup.model,
            AiUsageRollup.events,
            AiUsageRollup.errors,
            AiUsageRollup.unpriced_events,
            AiUsageRollup.latency_histogram,
        ).where(AiUsageRollup.monitor_id == monitor_id, AiUsageRollup.hour >= start, AiUsageRollup.hour < end)
    )
    summed: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        model = summed.setdefault(
            (row.provider, row.model),
            {"events": 0, "errors": 0, "unpriced_events": 0, "latency_histogram": {}},
        )
        model["events"] += row.events
        model["errors"] += row.errors
        model["unpriced_events"] += row.unpriced_events
        histogram.merge_into(model["latency_histogram"], row.latency_histogram or {})
    return [ModelWindow(provider, model, **sums) for (provider, model), sums in sorted(summed.items())]


def _in_window(monitor_id: str, start: datetime, end: datetime) -> Any:
    return and_(AiEvent.monitor_id == monitor_id, AiEvent.created_at >= start, AiEvent.created_at < end)


async def _short_calls(
    session: AsyncSession, monitor_id: str, start: datetime, end: datetime
) -> list[ShortCalls]:
    short = and_(
        AiEvent.input_tokens < insights.SHORT_PROMPT_TOKENS,
        AiEvent.output_tokens < insights.SHORT_COMPLETION_TOKENS,
    )

    def when_short(value: Any) -> Any:
        return func.coalesce(func.sum(case((short, value), else_=0)), 0)

    rows = await session.execute(
        select(
            AiEvent.provider,
            AiEvent.model,
            func.count().label("calls"),
            when_short(1).label("short_calls"),
            when_short(AiEvent.input_tokens).label("prompt"),
            when_short(AiEvent.output_tokens).label("completion"),
            when_short(func.coalesce(AiEvent.cached_tokens, 0)).label("cached"),
        )
        .where(_in_window(monitor_id, start, end))
        .group_by(AiEvent.provider, AiEvent.model)
        .order_by(AiEvent.provider, AiEvent.model)
    )
    return [
        ShortCalls(
            row.provider,
            row.model,
            row.calls,
            int(row.short_calls),
            int(row.prompt),
            int(row.completion),
            int(row.cached),
        )
        for row in rows
    ]


async def _prompt_repeats(
    session: AsyncSession, monitor_id: str, start: datetime, end: datetime
) -> PromptRepeats:
    per_hash = (
        select(
            AiEvent.prompt_hash.label("prompt_hash"),
            func.count().label("calls"),
            # What one call of this prompt cost on average (its priced calls), times its repeats.
            (
                func.sum(AiEvent.cost_usd) / func.nullif(func.count(AiEvent.cost_usd), 0) * (func.count() - 1)
            ).label("repeats_cost"),
        )
        .where(_in_window(monitor_id, start, end), AiEvent.prompt_hash.is_not(None))
        .group_by(AiEvent.prompt_hash)
        .subquery()
    )
    totals = (
        await session.execute(
            select(
                func.coalesce(func.sum(per_hash.c.calls), 0).label("hashed"),
                func.coalesce(func.sum(per_hash.c.calls - 1), 0).label("repeated"),
                func.sum(cast(per_hash.c.repeats_cost, Float)).label("cost"),
                func.coalesce(func.max(per_hash.c.calls), 0).label("most"),
            )
        )
    ).one()
    top = await session.execute(
        select(per_hash.c.prompt_hash, per_hash.c.calls)
        .where(per_hash.c.calls > 1)
        .order_by(per_hash.c.calls.desc(), per_hash.c.prompt_hash)
        .limit(insights.TOP_PROMPTS)
    )
    return PromptRepeats(
        hashed_calls=int(totals.hashed),
        repeated_calls=int(totals.repeated),
        repeats_cost_usd=None if totals.cost is None else float(totals.cost),
        most_calls=int(totals.most),
        top=tuple(RepeatedPrompt(row.prompt_hash, row.calls) for row in top),
    )


async def _failure_bursts(
    session: AsyncSession, monitor_id: str, start: datetime, end: datetime
) -> list[FailureBurst]:
    failed = and_(
        _in_window(monitor_id, start, end), AiEvent.status == EVENT_ERROR, AiEvent.prompt_hash.is_not(None)
    )
    candidates = list(
        await session.scalars(
            select(AiEvent.prompt_hash)
            .where(failed)
            .group_by(AiEvent.prompt_hash)
            .having(func.count() >= insights.STORM_FAILURES)
            .order_by(func.count().desc(), AiEvent.prompt_hash)
            .limit(STORM_CANDIDATES)
        )
    )
    bursts = []
    for prompt_hash in candidates:
        rows = await session.execute(
            select(AiEvent.created_at, AiEvent.cost_usd)
            .where(failed, AiEvent.prompt_hash == prompt_hash)
            .order_by(AiEvent.created_at)
            .limit(STORM_FAILURES_READ)
        )
        calls = [FailedCall(row.created_at, row.cost_usd) for row in rows]
        bursts.append(burst_of(prompt_hash or "", calls))
    return bursts


async def _rag_usage(
    session: AsyncSession, monitor_id: str, start: datetime, end: datetime
) -> list[RagUsage]:
    rows = await session.execute(
        select(
            AiEvent.provider,
            AiEvent.model,
            func.count().label("events"),
            func.sum(AiEvent.input_tokens).label("prompt"),
            func.sum(AiEvent.rag_context_tokens).label("context"),
            func.sum(AiEvent.rag_avg_relevance).label("relevance"),
            func.sum(AiEvent.rag_context_tokens * (1 - AiEvent.rag_avg_relevance)).label("excess"),
        )
        .where(
            _in_window(monitor_id, start, end),
            AiEvent.rag_context_tokens.is_not(None),
            AiEvent.rag_avg_relevance.is_not(None),
        )
        .group_by(AiEvent.provider, AiEvent.model)
        .order_by(AiEvent.provider, AiEvent.model)
    )
    return [
        RagUsage(
            row.provider,
            row.model,
            row.events,
            int(row.prompt),
            int(row.context),
            float(row.relevance),
            float(row.excess),
        )
        for row in rows
    ]
