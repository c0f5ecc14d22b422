"""Rows for tests that need monitors and results without going through the API."""

from __future__ import annotations

from datetime import datetime

from control_plane.core.ids import new_id
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import Monitor
from control_plane.results import ResultIn, record_results


def monitor_row(org_id: str, **fields: object) -> Monitor:
    """An HTTP monitor of `org_id` as a row, any column overridden by `fields`."""
    now = utcnow()
    values: dict[str, object] = {
        "id": new_id("mon"),
        "org_id": org_id,
        "name": "Monitor",
        "type": "HTTP",
        "url": "https://example.com/health",
        "interval": 300,
        "timeout": 30,
        "method": "GET",
        "regions": ["us-east-1"],
        "config": {},
        "is_active": True,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return Monitor(**values)


async def insert_monitor(db: Database, org_id: str, **fields: object) -> Monitor:
    monitor = monitor_row(org_id, **fields)
    async with db.session() as session:
        session.add(monitor)
        await session.commit()
    return monitor


def result(monitor_id: str, checked_at: datetime, *, status: str = "UP", **fields: object) -> ResultIn:
    values: dict[str, object] = {
        "id": new_id("chk"),
        "monitor_id": monitor_id,
        "region": "us-east-1",
        "status": status,
        "checked_at": checked_at,
        "response_time": 100.0,
        "status_code": 200 if status == "UP" else 503,
        **fields,
    }
    return ResultIn(**values)  # type: ignore[arg-type]


async def record(db: Database, results: list[ResultIn]) -> None:
    async with db.session() as session:
        await record_results(session, results)
