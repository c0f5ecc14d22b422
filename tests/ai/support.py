"""LLM monitors for AI monitoring's tests."""

from __future__ import annotations

from control_plane.db import Database
from control_plane.models import Monitor
from tests.factories import insert_monitor


async def insert_llm_monitor(db: Database, org_id: str, **fields: object) -> Monitor:
    """An active LLM monitor of `org_id` (a row, not through the API), any column overridden."""
    values: dict[str, object] = {"name": "Chat assistant", "type": "LLM", "url": None, "regions": [], **fields}
    return await insert_monitor(db, org_id, **values)
