"""Components' health on a status page: each monitor's status now and its uptime per UTC day.

How a component's status is derived (the first rule that holds wins):

- ``under_maintenance``: the monitor is inside an enabled maintenance window now (its own or its
  organization's org-wide one).
- ``major_outage``: the monitor is down (its engine state says so: every region, or the quorum of
  its regions, failing), or an open incident declared on a page with impact ``critical`` or
  ``major`` names it.
- ``partial_outage``: some of its regions are failing without the monitor being down, or an open
  declared incident with impact ``minor`` names it.
- ``degraded``: an open automatic incident other than a DOWN one (SSL expiry, DNS change, no data),
  an open DOWN incident flagged flapping, or an open declared incident with impact ``none``.
- ``operational``: otherwise.

A page's overall status is its worst component's, with ``under_maintenance`` counted as
``operational`` (planned work is not an outage); a page without components is operational.

Uptime is the share of checks up, from the daily rollups (and the results still queued for them),
with the checks inside maintenance taken out, as services/sla.py counts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

COMPONENT_STATUSES = ("operational", "degraded", "partial_outage", "major_outage", "under_maintenance")
OVERALL_STATUSES = ("operational", "degraded", "partial_outage", "major_outage")
DEFAULT_DAYS = 90


@dataclass(frozen=True, slots=True)
class DayUptime:
    day: date  # UTC day
    uptime: float | None  # percent of checks up that day, maintenance excluded; None: no data
    checks: int
    incidents: int  # automatic incidents that were open some time that day


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    monitor_id: str
    status: str  # one of COMPONENT_STATUSES
    uptime: float | None  # over the days asked for (percent, 2 decimals), maintenance excluded
    days: list[DayUptime]  # oldest first, one per day of the span (today included)


def overall_status(statuses: Iterable[str]) -> str:
    """The worst of the components' statuses; maintenance counts as operational."""
    worst = 0
    for status in statuses:
        if status in OVERALL_STATUSES:
            worst = max(worst, OVERALL_STATUSES.index(status))
    return OVERALL_STATUSES[worst]


async def components_health(
    session: AsyncSession, monitor_ids: Sequence[str], now: datetime, days: int = DEFAULT_DAYS
) -> dict[str, ComponentHealth]:
    """Per monitor id asked for: its status now and its uptime over the last `days` UTC days
    (today included)."""
    raise NotImplementedError
