"""Reading an LLM monitor's AI usage: a period's figures from its hourly rollups, and its raw
events a page at a time.

Usage never reads raw events: one statement sums the rollups of the period per hour and per model
in the database and hands over their latency histograms as one string to merge, so 30 days of
millions of events are a few thousand rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Float, Text, cast, func, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import UTCDateTime
from control_plane.domain import histogram
from control_plane.models.ai import AiEvent, AiUsageRollup

# The periods ai-usage answers, as the hours they span (ending with the current hour).
PERIOD_HOURS: dict[str, int] = {"24h": 24, "7d": 168, "30d": 720}
TOP_MODELS = 10

# Rounding of what usage answers (the response models document it).
COST_DIGITS = 6  # USD
RATE_DIGITS = 2  # errorRate, in percent
RELEVANCE_DIGITS = 3  # ragStats.avgRelevance, 0-1
DOCS_DIGITS = 1  # ragStats.avgDocsRetrieved
# Latencies are whole milliseconds.

_HOUR, _MODEL, _HISTOGRAMS = "h", "m", "j"

_R = AiUsageRollup
# What each hour's and each model's row sums, in this order.
_SUMMED = (
    _R.events,
    _R.errors,
    _R.total_tokens,
    _R.cost_usd,
    _R.latency_sum_ms,
    _R.rag_events,
    _R.rag_docs_events,
    _R.rag_docs_sum,
    _R.rag_relevance_events,
    _R.rag_relevance_sum,
    _R.rag_retrieval_events,
    _R.rag_retrieval_ms_sum,
)


@dataclass(slots=True)
class _Sums:
    events: int = 0
    errors: int = 0
    tokens: int = 0
    cost: float = 0.0
    latency_sum: float = 0.0
    rag_events: int = 0
    rag_docs_events: int = 0
    rag_docs_sum: float = 0.0
    rag_relevance_events: int = 0
    rag_relevance_sum: float = 0.0
    rag_retrieval_events: int = 0
    rag_retrieval_sum: float = 0.0

    @classmethod
    def of(cls, values: Sequence[Any]) -> _Sums:
        """From the columns of _SUMMED. PostgreSQL sums bigints as numeric (Decimal) and a union
        may widen a column to double precision, hence the conversions."""
        counts = [int(value or 0) for value in values]
        amounts = [float(value or 0) for value in values]
        return cls(
            events=counts[0],
            errors=counts[1],
            tokens=counts[2],
            cost=amounts[3],
            latency_sum=amounts[4],
            rag_events=counts[5],
            rag_docs_events=counts[6],
            rag_docs_sum=amounts[7],
            rag_relevance_events=counts[8],
            rag_relevance_sum=amounts[9],
            rag_retrieval_events=counts[10],
            rag_retrieval_sum=amounts[11],
        )

    def add(self, other: _Sums) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def period_hours(now: datetime, hours: int) -> list[datetime]:
    """The `hours` UTC hours ending with the one `now` is in, oldest first."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=hours - 1 - i) for i in range(hours)]


def _average(total: float, count: int, digits: int | None = None) -> float | int:
    if not count:
        return 0
    value = total / count
    return round(value) if digits is None else round(value, digits)


def _usage_rows(session: AsyncSession, monitor_id: str, first: datetime, last: datetime) -> Any:
    """Sums per hour and per model, then every row's latency histogram in one string: one
    statement, one snapshot, so an ingest committing meanwhile is in all three parts or in none.

    The histograms are merged here, not in SQL: json_each over 720 x models rows of ~30 buckets is
    slower in PostgreSQL than orjson reading them as one JSON array and a dict adding them up.
    """
    where = (_R.monitor_id == monitor_id, _R.hour >= first, _R.hour <= last)
    sums = [func.sum(column) for column in _SUMMED]
    per_hour = (
        select(
            literal(_HOUR, Text).label("kind"), _R.hour.label("hour"), cast(null(), Text).label("name"), *sums
        )
        .where(*where)
        .group_by(_R.hour)
    )
    per_model = (
        select(literal(_MODEL, Text), cast(null(), UTCDateTime), cast(_R.model, Text), *sums)
        .where(*where)
        .group_by(_R.model)
    )
    histograms = select(
        literal(_HISTOGRAMS, Text),
        cast(null(), UTCDateTime),
        func.aggregate_strings(cast(_R.latency_histogram, Text), ","),
        *(cast(null(), Float) for _ in _SUMMED),
    ).where(*where)
    return session.execute(union_all(per_hour, per_model, histograms))


def _merged_histograms(joined: str | None) -> histogram.Histogram:
    total: histogram.Histogram = {}
    if not joined:
        return total
    get = total.get
    for one in orjson.loads(f"[{joined}]"):
        for bucket, count in one.items():
            total[bucket] = get(bucket, 0) + count
    return total


async def usage(session: AsyncSession, monitor_id: str, *, period: str, now: datetime) -> dict[str, Any]:
    """The period's figures as ai-usage answers them; `hourlyUsage[].hour` is a datetime."""
    hours = period_hours(now, PERIOD_HOURS[period])
    rows = await _usage_rows(session, monitor_id, hours[0], hours[-1])
    per_hour: dict[datetime, _Sums] = {}
    per_model: dict[str, _Sums] = {}
    latencies: histogram.Histogram = {}
    for kind, hour, name, *values in rows:
        if kind == _HOUR:
            per_hour[hour] = _Sums.of(values)
        elif kind == _MODEL:
            per_model[name] = _Sums.of(values)
        else:
            latencies = _merged_histograms(name)
    total = _Sums()
    for sums in per_model.values():
        total.add(sums)
    top = sorted(per_model.items(), key=lambda item: (-item[1].events, item[0]))[:TOP_MODELS]
    empty = _Sums()
    p95 = histogram.quantile(latencies, 0.95)
    return {
        "totalEvents": total.events,
        "totalTokens": total.tokens,
        "totalCost": round(total.cost, COST_DIGITS),
        "avgLatency": _average(total.latency_sum, total.events),
        "p95Latency": 0 if p95 is None else round(p95),
        "errorRate": _average(100 * total.errors, total.events, RATE_DIGITS),
        "topModels": [
            {
                "model": model,
                "count": sums.events,
                "totalCost": round(sums.cost, COST_DIGITS),
                "avgLatency": _average(sums.latency_sum, sums.events),
            }
            for model, sums in top
        ],
        "hourlyUsage": [
            {
                "hour": hour,
                "events": (sums := per_hour.get(hour, empty)).events,
                "tokens": sums.tokens,
                "cost": round(sums.cost, COST_DIGITS),
            }
            for hour in hours
        ],
        "ragStats": {
            "totalRagEvents": total.rag_events,
            "avgRelevance": _average(total.rag_relevance_sum, total.rag_relevance_events, RELEVANCE_DIGITS),
            "avgDocsRetrieved": _average(total.rag_docs_sum, total.rag_docs_events, DOCS_DIGITS),
            "avgRetrievalMs": _average(total.rag_retrieval_sum, total.rag_retrieval_events),
        },
    }


async def event_count(session: AsyncSession, monitor_id: str) -> int:
    """How many raw events the monitor has, without counting millions of index entries: the
    events of its oldest event's hour counted (retention may have taken part of that hour), the
    later hours read from their rollups, which the ingest writes in the same transaction as the
    events and retention keeps longer. Retention deletes oldest first, so every event after the
    oldest one is still there."""
    oldest = await session.scalar(
        select(func.min(AiEvent.created_at)).where(AiEvent.monitor_id == monitor_id)
    )
    if oldest is None:
        return 0
    next_hour = oldest.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    first_hour = (
        select(func.count())
        .select_from(AiEvent)
        .where(AiEvent.monitor_id == monitor_id, AiEvent.created_at < next_hour)
        .scalar_subquery()
    )
    later_hours = (
        select(func.coalesce(func.sum(_R.events), 0))
        .where(_R.monitor_id == monitor_id, _R.hour >= next_hour)
        .scalar_subquery()
    )
    return int(await session.scalar(select(first_hour + later_hours)) or 0)


async def event_page(
    session: AsyncSession, monitor_id: str, *, page: int, limit: int
) -> tuple[Sequence[AiEvent], int]:
    """The monitor's raw events still kept, newest first, and how many there are."""
    total = await event_count(session, monitor_id)
    events = await session.scalars(
        select(AiEvent)
        .where(AiEvent.monitor_id == monitor_id)
        .order_by(AiEvent.created_at.desc(), AiEvent.id.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return events.all(), total
