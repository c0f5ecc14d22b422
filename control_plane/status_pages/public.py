"""A status page as visitors see it: its components' health, its incidents (automatic and
declared) with their timelines, its maintenance; found by slug or by verified custom domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.models.status_pages import StatusPage
from control_plane.status_pages.health import ComponentHealth

PAST_INCIDENT_DAYS = 14


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    status: str | None
    message: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PublicIncident:
    id: str
    title: str
    status: str
    impact: str
    started_at: datetime
    resolved_at: datetime | None
    components: list[str]  # display names
    updates: list[TimelineEntry]  # newest first
    declared: bool  # declared by hand on the page (PageIncident), else automatic
    postmortem: str | None  # Markdown as written (the HTML renders it sanitised)


@dataclass(frozen=True, slots=True)
class PublicComponent:
    id: str
    name: str
    group: str | None
    order: int
    health: ComponentHealth


@dataclass(frozen=True, slots=True)
class PublicMaintenance:
    id: str
    title: str
    description: str | None
    starts_at: datetime
    ends_at: datetime
    components: list[str]  # display names


@dataclass(frozen=True, slots=True)
class PageInfo:
    """The page's own fields a visitor's view needs."""

    id: str
    name: str
    slug: str
    description: str | None
    logo_url: str | None
    favicon_url: str | None
    hide_branding: bool
    custom_css: str | None
    custom_domain: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PageView:
    page: PageInfo
    overall_status: str
    components: list[PublicComponent]  # in order
    active_incidents: list[PublicIncident]
    maintenance: list[PublicMaintenance]  # active and upcoming
    past_incidents: list[PublicIncident]  # resolved within the last 14 days, newest first


async def page_by_slug(session: AsyncSession, slug: str) -> StatusPage | None:
    raise NotImplementedError


async def page_by_domain(session: AsyncSession, host: str) -> StatusPage | None:
    """The page whose custom domain is `host` (any case, a port or trailing dot ignored), once
    verified."""
    raise NotImplementedError


async def page_view(session: AsyncSession, page: StatusPage, now: datetime) -> PageView:
    raise NotImplementedError
