"""RSS 2.0 and Atom feeds of a public status page's incidents (feedgen): its components' automatic
incidents and the ones declared on it, of the last 90 days, newest first, each with its timeline.

The feed holds what the page shows a visitor of each incident (public.py decides that: for an
automatic one, never the engine's check errors), and nothing that changes unless an incident does,
so that its ETag only changes with them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.models.status_pages import StatusPage, StatusPageComponent
from control_plane.status_pages import public
from control_plane.status_pages.markdown import render_markdown
from control_plane.status_pages.public import PublicIncident

FEED_DAYS = 90
MAX_ENTRIES = 50
SLUG_LENGTH = 50  # the column's
FeedFormat = Literal["rss", "atom"]


@dataclass(frozen=True, slots=True)
class PageFeed:
    page: StatusPage
    incidents: list[PublicIncident]  # newest first, at most MAX_ENTRIES


async def public_page_feed(session: AsyncSession, slug: str, now: datetime) -> PageFeed | None:
    """The public page's incidents open now or resolved within FEED_DAYS; None for a private page
    or no page (the same answer: a private page's slug is not confirmed)."""
    if len(slug) > SLUG_LENGTH:
        return None
    page = await public.page_by_slug(session, slug)
    if page is None or not page.is_public:
        return None
    components = list(
        await session.scalars(select(StatusPageComponent).where(StatusPageComponent.page_id == page.id))
    )
    since = now - timedelta(days=FEED_DAYS)
    # public.py's reader of a page's incidents, so the feed says what the page says.
    incidents = await public.page_incidents(session, page.id, components, since)
    return PageFeed(page, incidents[:MAX_ENTRIES])


def _updated(incident: PublicIncident) -> datetime:
    """When the incident last changed: its newest timeline entry, its end or its start."""
    times = [incident.started_at, *(entry.at for entry in incident.updates)]
    if incident.resolved_at is not None:
        times.append(incident.resolved_at)
    return max(times)


def _content(incident: PublicIncident) -> str:
    """The timeline (newest first) as HTML, every text escaped; a post-mortem rendered sanitised."""
    parts = []
    if incident.components:
        parts.append(f"<p>Affected: {html.escape(', '.join(incident.components))}</p>")
    for entry in incident.updates:
        status = html.escape((entry.status or "update").capitalize())
        at = entry.at.strftime("%Y-%m-%d %H:%M UTC")
        parts.append(f"<p><strong>{status}</strong> ({at}): {html.escape(entry.message)}</p>")
    if incident.postmortem:
        parts.append(f"<h3>Post-mortem</h3>{render_markdown(incident.postmortem)}")
    return "".join(parts)


def render_feed(feed: PageFeed, public_url: str, kind: FeedFormat) -> bytes:
    """The feed as RSS 2.0 or Atom, its links absolute under `public_url`."""
    page_url = f"{public_url.rstrip('/')}/status/{feed.page.slug}"
    generator = FeedGenerator()
    generator.id(page_url)
    generator.title(feed.page.name)
    generator.description(feed.page.description or f"Incidents on the {feed.page.name} status page")
    # In this order: RSS's <link> is the last one given.
    generator.link(href=f"{page_url}/feed.{kind}", rel="self")
    generator.link(href=page_url, rel="alternate")
    generator.language("en")
    generator.generator("Traxo")
    newest = max((_updated(incident) for incident in feed.incidents), default=feed.page.updated_at)
    generator.updated(newest)
    generator.lastBuildDate(newest)  # not the time of the request: the ETag follows the incidents
    for incident in feed.incidents:
        entry = generator.add_entry(order="append")
        link = f"{page_url}#inc-{incident.id}"
        entry.id(link)
        entry.guid(link, permalink=True)
        entry.title(f"{incident.title} ({incident.status})")
        entry.link(href=link)
        entry.published(incident.started_at)
        entry.updated(_updated(incident))
        content = _content(incident)
        entry.content(content, type="html")
        if kind == "rss":  # its <description>; for Atom this would replace the content
            entry.description(content, isSummary=True)
    data: bytes = generator.rss_str() if kind == "rss" else generator.atom_str()
    return data
