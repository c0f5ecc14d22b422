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
