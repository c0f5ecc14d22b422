"""The AI ingest's group commit: requests' events queue up, a writer stores everything pending in
one transaction and answers each request after that commit (a 200 is a committed event)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from control_plane.ai.events import AiEventIn
from control_plane.db import Database
from control_plane.settings import Settings


@dataclass(frozen=True, slots=True)
class Accepted:
    id: str  # evt_... (for a retried eventId: the stored event's id)
    cost_usd: float | None  # None: unpriced model
    daily_events_used: int  # the organization's events today (UTC) after this one
    daily_events_limit: int  # its plan's limit


@dataclass(frozen=True, slots=True)
class OverLimit:
    error: str  # "Daily AI event limit reached: 1000 events per day on the FREE plan; ..."
    retry_after: int  # whole seconds to the next UTC midnight (>= 1)
    daily_events_used: int
    daily_events_limit: int


class AiIngest:
    """Stores LLM events by group commit (many requests' events per transaction)."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock

    async def submit(self, monitor_id: str, events: Sequence[AiEventIn]) -> list[Accepted | OverLimit]:
        """Returns once the accepted events are COMMITTED (one answer per event, in order).
        Raises NotFound("Monitor not found") for an unknown id, InvalidInput("monitorId: ...")
        for a monitor that is not LLM type or is paused (is_active False) — saying which —
        before anything is written."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop the writer once what is pending is written."""
