"""Helpers for the monitor tests: plan changes, monitors and results written straight to the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from control_plane.core import changes
from control_plane.core.ids import new_id
from control_plane.db import Database
from control_plane.models import Incident, Monitor, Organization
from control_plane.results import ResultIn, record_results
from control_plane.services.accounts import AUTH_TOPIC
from tests.conftest import Account
from tests.factories import monitor_row

HTTP_MONITOR: dict[str, Any] = {
    "name": "Production API",
    "url": "https://api.example.com/health",
    "type": "HTTP",
}
BASE_TIME = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


async def set_plan(db: Database, org_id: str, plan: str) -> None:
    """Change the plan as billing would, and drop cached principals so the next request sees it."""
    async with db.session() as session:
        await session.execute(update(Organization).where(Organization.id == org_id).values(plan=plan))
        await changes.publish(session, AUTH_TOPIC)
        await session.commit()


async def create_monitor(api: httpx.AsyncClient, account: Account, **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/monitors", json={**HTTP_MONITOR, **fields}, headers=account.headers)
    assert response.status_code == 201, response.text
    monitor: dict[str, Any] = response.json()["data"]
    return monitor


async def insert_monitors(db: Database, org_id: str, count: int, **columns: Any) -> list[str]:
    """`count` monitors written directly (faster than the API when a test needs a plan's limit)."""
    now = datetime.now(UTC)
    rows = [
        monitor_row(
            org_id,
            **{
                "name": f"Inserted {i}",
                "url": f"https://{i}.example.com/",
                "created_at": now - timedelta(days=1, seconds=count - i),
                "updated_at": now,
                **columns,
            },
        )
        for i in range(count)
    ]
    async with db.session() as session:
        session.add_all(rows)
        await session.commit()
    return [row.id for row in rows]


async def record(db: Database, monitor_id: str, *results: dict[str, Any]) -> list[str]:
    """Store results through the one results service; each dict overrides ResultIn's fields."""
    batch = [
        ResultIn(
            **{
                "id": new_id("chk"),
                "monitor_id": monitor_id,
                "region": "us-east-1",
                "status": "UP",
                "checked_at": BASE_TIME,
                "response_time": 100.0,
                "status_code": 200,
                **result,
            }
        )
        for result in results
    ]
    async with db.session() as session:
        await record_results(session, batch)
    return [result.id for result in batch]


async def insert_incident(
    db: Database,
    org_id: str,
    monitor_id: str,
    started_at: datetime,
    resolved_at: datetime | None = None,
    cause: str = "Connection timeout",
) -> str:
    incident = Incident(
        id=new_id("inc"),
        org_id=org_id,
        monitor_id=monitor_id,
        started_at=started_at,
        resolved_at=resolved_at,
        cause=cause,
    )
    async with db.session() as session:
        session.add(incident)
        await session.commit()
    return incident.id


async def count_rows(db: Database, model: type[Any], **where: Any) -> int:
    async with db.session() as session:
        query = select(func.count()).select_from(model)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return int(await session.scalar(query) or 0)


async def stored_monitor(db: Database, monitor_id: str) -> Monitor | None:
    async with db.session() as session:
        return await session.get(Monitor, monitor_id)
