"""LLM monitors' insights as rows: the worker's findings kept one per (monitor, type, subject), the
list an API caller reads, and dismissing.

Every change is compare-and-set on (updated_at, dismissed) as read, and a new finding is an
INSERT … ON CONFLICT DO NOTHING on the unique (monitor, type, subject): two replicas running the job
at once, or a user dismissing while it runs, never duplicate a row nor undo the other's change (the
loser's change waits for the next pass).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.ai.insights.rules import SEVERITY_RANK, Finding, changed_materially, numbers_of
from control_plane.ai.monitors import llm_monitor
from control_plane.core.errors import NotFound
from control_plane.core.ids import new_id
from control_plane.db import insert_ignoring_conflicts
from control_plane.models.ai import AiInsight

NOT_FOUND = "Insight not found"
_DISMISS_ATTEMPTS = 5


async def keep_findings(
    session: AsyncSession, monitor_id: str, org_id: str, findings: Sequence[Finding], *, now: datetime
) -> None:
    """The monitor's insights made to match its findings, committed: each finding updates its row
    (active again if it had ended) or inserts one; a dismissed row stays dismissed unless the finding
    changed materially from what was dismissed; rows with no finding any more become inactive."""
    rows = await session.scalars(select(AiInsight).where(AiInsight.monitor_id == monitor_id))
    existing = {(row.type, row.subject): row for row in rows}
    for finding in findings:
        row = existing.pop((finding.type, finding.subject), None)
        values = {
            "severity": finding.severity,
            "title": finding.title,
            "description": finding.description,
            "savings": finding.savings,
            "details": finding.details,
            "active": True,
            "updated_at": now,
        }
        if row is None:
            await session.execute(
                insert_ignoring_conflicts(
                    session, AiInsight.__table__, "monitor_id", "type", "subject"
                ).values(
                    id=new_id("ins"),
                    org_id=org_id,
                    monitor_id=monitor_id,
                    type=finding.type,
                    subject=finding.subject,
                    dismissed=False,
                    created_at=now,
                    **values,
                )
            )
            continue
        if row.dismissed and changed_materially(row.dismissed_numbers, finding):
            values |= {"dismissed": False, "dismissed_numbers": None}
        await _compare_and_set(session, row, values)
    for row in existing.values():
        if row.active:
            await _compare_and_set(session, row, {"active": False, "updated_at": now})
    await session.commit()


async def _compare_and_set(session: AsyncSession, row: AiInsight, values: Mapping[str, Any]) -> bool:
    result = await session.execute(
        update(AiInsight)
        .where(
            AiInsight.id == row.id,
            AiInsight.updated_at == row.updated_at,
            AiInsight.dismissed.is_(row.dismissed),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _order(row: AiInsight) -> tuple[int, float, float, str]:
    return (-SEVERITY_RANK.get(row.severity, 0), -(row.savings or 0.0), -row.created_at.timestamp(), row.id)


async def list_insights(session: AsyncSession, org_id: str, monitor_id: str) -> list[AiInsight]:
    """The monitor's insights that hold (dismissed ones included): by severity, the most critical
    first, then by savings, the largest first, then the newest."""
    await llm_monitor(session, org_id, monitor_id)
    rows = await session.scalars(
        select(AiInsight).where(AiInsight.monitor_id == monitor_id, AiInsight.active.is_(True))
    )
    return sorted(rows, key=_order)


async def set_dismissed(
    session: AsyncSession, org_id: str, monitor_id: str, insight_id: str, dismissed: bool, *, now: datetime
) -> AiInsight:
    """Dismisses (remembering the numbers it was dismissed with) or restores the monitor's insight,
    committed. An inactive insight can still be dismissed: when it holds again it stays hidden."""
    await llm_monitor(session, org_id, monitor_id)
    for _ in range(_DISMISS_ATTEMPTS):
        row = await session.scalar(
            select(AiInsight)
            .where(AiInsight.id == insight_id, AiInsight.monitor_id == monitor_id)
            .execution_options(populate_existing=True)
        )
        if row is None:
            raise NotFound(NOT_FOUND)
        numbers = numbers_of(row.type, row.severity, row.savings, row.details) if dismissed else None
        changed = {
            "dismissed": dismissed,
            "dismissed_numbers": numbers,
            "updated_at": max(now, row.updated_at),
        }
        if await _compare_and_set(session, row, changed):
            await session.commit()
            break
        await session.rollback()  # the worker changed it meanwhile: read it again
    row = await session.scalar(
        select(AiInsight).where(AiInsight.id == insight_id).execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound(NOT_FOUND)
    return row
