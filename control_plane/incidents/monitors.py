"""What the engine reads of a monitor and its open incidents, and what judging one changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.id_sets import among
from control_plane.domain.incident_rules import HEARTBEAT_REGION
from control_plane.incidents.changes import MonitorRef, OpenIncident
from control_plane.models import Incident


@dataclass(frozen=True, slots=True)
class MonitorRow:
    id: str
    org_id: str
    name: str
    url: str | None
    type: str
    regions: tuple[str, ...]
    config: dict[str, Any]
    interval: int

    @property
    def ref(self) -> MonitorRef:
        return MonitorRef(self.id, self.org_id, self.name, self.url, self.type)

    @property
    def judged_regions(self) -> tuple[str, ...]:
        """Where its results come from: its regions, or a heartbeat's one pseudo-region."""
        return (HEARTBEAT_REGION,) if self.type == "HEARTBEAT" else self.regions


@dataclass(slots=True)
class Change:
    state_changed: bool = False
    down: bool = False
    transitions: list[str] = field(default_factory=list)
    opened: int = 0
    resolved: int = 0


def open_incident_of(row: Any) -> OpenIncident:
    return OpenIncident(
        row.id,
        row.kind,
        row.started_at,
        tuple(row.regions or ()),
        row.flapping,
        row.suppressed_by,
        row.in_maintenance,
    )


async def open_incidents(
    session: AsyncSession, monitor_ids: Sequence[str]
) -> dict[tuple[str, str], OpenIncident]:
    """(monitor id, kind) -> its open incident."""
    found: dict[tuple[str, str], OpenIncident] = {}
    query = select(
        Incident.id,
        Incident.monitor_id,
        Incident.kind,
        Incident.started_at,
        Incident.regions,
        Incident.flapping,
        Incident.suppressed_by,
        Incident.in_maintenance,
    ).where(Incident.resolved_at.is_(None))
    for condition in among(session, Incident.monitor_id, list(monitor_ids)):
        for row in await session.execute(query.where(condition)):
            found[(row.monitor_id, row.kind)] = open_incident_of(row)
    return found
