"""What the agents' side reads of assignments: a member's granted monitors, and which regions to look at."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.id_sets import among
from control_plane.models import AgentToken, AssignmentGrant, Monitor


@dataclass(frozen=True, slots=True)
class MonitorAssignment:
    """What an agent needs of a monitor, as read from the database."""

    monitor_id: str
    type: str
    target: str
    interval: int
    timeout: int
    method: str
    expected_status: int | None
    expected_keyword: str | None
    config: dict[str, object]
    epoch: int


async def load_assignments(
    session: AsyncSession, member_key: str, region: str, monitor_ids: Iterable[str] | None = None
) -> dict[str, MonitorAssignment]:
    """The active monitors granted to the member in `region` (of `monitor_ids`, or all), by id."""
    query = (
        select(
            Monitor.id,
            Monitor.type,
            Monitor.url,
            Monitor.interval,
            Monitor.timeout,
            Monitor.method,
            Monitor.expected_status,
            Monitor.expected_keyword,
            Monitor.config,
            AssignmentGrant.epoch,
        )
        .join(AssignmentGrant, AssignmentGrant.monitor_id == Monitor.id)
        .where(
            AssignmentGrant.member_key == member_key,
            AssignmentGrant.region == region,
            AssignmentGrant.revoked_at.is_(None),
            Monitor.is_active.is_(True),
        )
    )
    if monitor_ids is None:
        rows = list((await session.execute(query)).all())
    else:
        rows = []
        for condition in among(session, Monitor.id, set(monitor_ids)):
            rows += (await session.execute(query.where(condition))).all()
    return {
        row.id: MonitorAssignment(
            monitor_id=row.id,
            type=row.type,
            target=row.url or "",
            interval=row.interval,
            timeout=row.timeout,
            method=row.method,
            expected_status=row.expected_status,
            expected_keyword=row.expected_keyword,
            config=row.config or {},
            epoch=row.epoch,
        )
        for row in rows
    }


async def agent_regions(session: AsyncSession, configured: Iterable[str]) -> list[str]:
    """The configured regions and every region a live token serves, sorted."""
    token_regions = await session.scalars(
        select(AgentToken.region).where(AgentToken.revoked_at.is_(None)).distinct()
    )
    return sorted(set(configured) | set(token_regions))


async def regions_of(session: AsyncSession, monitor_ids: Collection[str]) -> set[str]:
    """The regions the monitors are in, or still hold a grant in (a monitor may have left one)."""
    regions: set[str] = set()
    for condition in among(session, Monitor.id, monitor_ids):
        for monitor_regions in await session.scalars(select(Monitor.regions).where(condition)):
            regions.update(monitor_regions)
    for condition in among(session, AssignmentGrant.monitor_id, monitor_ids):
        regions.update(
            await session.scalars(
                select(AssignmentGrant.region)
                .where(condition, AssignmentGrant.revoked_at.is_(None))
                .distinct()
            )
        )
    return regions
