"""The LLM monitor a request names: its organization's, and of type LLM."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.errors import InvalidInput, NotFound
from control_plane.models import Monitor


async def llm_monitor(session: AsyncSession, org_id: str, monitor_id: str) -> Monitor:
    """The organization's monitor (404 when it has none by that id, or another organization does)
    when it is an LLM monitor; a 400 saying what it is otherwise."""
    monitor = await session.scalar(select(Monitor).where(Monitor.id == monitor_id, Monitor.org_id == org_id))
    if monitor is None:
        raise NotFound("Monitor not found")
    if monitor.type != "LLM":
        raise InvalidInput(
            f"id: monitor {monitor_id} is a {monitor.type} monitor; AI usage is kept for LLM monitors"
        )
    return monitor
