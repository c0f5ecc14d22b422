"""Subscribers' mails: what happened on a public page, mailed to its confirmed subscribers whose
components it concerns (or who follow the whole page), and the confirmation mail of a new
subscription.

What happened, within the last day (LOOKBACK):
- automatic DOWN incidents of the components' monitors opening and resolving, and people's updates
  of them (the incident outbox, IncidentEvent), except those in maintenance or suppressed by a
  dependency, as alerting skips them; a person's "resolved" update is the one mail of its resolution;
- the page's declared incidents: their creation and each update (PageIncidentUpdate);
- maintenance windows of the components' monitors (or the whole organization): once when created
  if they start within a week, and when each occurrence starts.
Only what the public page shows is written: the names it gives the components, people's words,
never the engine's check errors.

Exactly once: a mail's (subscriber, happening) row (SubscriberNotice) is inserted and committed
before the mail goes, so two replicas cannot both send it; a failed send deletes it again and the
next round retries. A subscriber is mailed only what happened after confirming. Alert delivery's
own marks (IncidentEvent.dispatched_at) are not touched. Without an SMTP server nothing is claimed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.alerts.senders.email import send_message
from control_plane.core.timefmt import iso
from control_plane.db import Database
from control_plane.maintenance.windows import Schedule, current_or_next
from control_plane.models import Incident, MaintenanceWindow
from control_plane.models.incidents import KIND_DOWN, IncidentEvent
from control_plane.models.status_pages import (
    PageIncident,
    PageIncidentUpdate,
    PageSubscriber,
    StatusPage,
    StatusPageComponent,
    SubscriberNotice,
)
from control_plane.settings import Settings
from control_plane.status_pages.subscribers import CONFIRM_HOURS, Confirmation

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=1)
MAINTENANCE_NOTICE_AHEAD = timedelta(days=7)
SENDS_AT_ONCE = 10
_EVENT_TYPES = ("incident.opened", "incident.resolved", "incident.updated")


@dataclass(frozen=True, slots=True)
class NotifyRound:
    sent: int
    failed: int


@dataclass(frozen=True, slots=True)
class Happening:
    """Something a page's subscribers are told of once."""

    key: str  # unique per page: iev:<event>, piu:<update>, mw:<window>:scheduled|<start>
    page_id: str
    components: frozenset[str] | None  # spc_... it concerns; None: the whole page
    at: datetime
    headline: str  # "Investigating", "Scheduled maintenance"
    title: str
    message: str


@dataclass(frozen=True, slots=True)
class _Page:
    id: str
    name: str
    slug: str
    names: dict[str, str]  # component id -> display name


@dataclass(frozen=True, slots=True)
class _Mail:
    subscriber_id: str
    email: str
    unsubscribe_token: str
    page: _Page
    happening: Happening


def _status_word(status: str | None) -> str:
    return (status or "update").replace("_", " ").capitalize()


def page_url(settings: Settings, slug: str) -> str:
    return f"{settings.public_url.rstrip('/')}/status/{quote(slug)}"


def unsubscribe_url(settings: Settings, slug: str, token: str) -> str:
    return f"{page_url(settings, slug)}/unsubscribe?token={quote(token)}"


def confirm_url(settings: Settings, slug: str, token: str) -> str:
    return f"{page_url(settings, slug)}/subscribe/confirm?token={quote(token)}"


def _message(
    settings: Settings, to: str, subject: str, body: str, unsubscribe: str, now: datetime
) -> EmailMessage:
    domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2] or "traxo.local"
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Date"] = format_datetime(now)
    message["Auto-Submitted"] = "auto-generated"
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(body)
    return message


def confirmation_message(settings: Settings, confirmation: Confirmation, now: datetime) -> EmailMessage:
    link = confirm_url(settings, confirmation.page_slug, confirmation.confirm_token)
    unsubscribe = unsubscribe_url(settings, confirmation.page_slug, confirmation.unsubscribe_token)
    body = (
        f"Someone (we hope you) asked for {confirmation.page_name}'s incident and maintenance notices "
        f"at this address.\n\nConfirm the subscription within {CONFIRM_HOURS} hours:\n{link}\n\n"
        "If it was not you, ignore this mail: nothing will be sent.\n"
    )
    subject = f"[{confirmation.page_name}] Confirm your subscription"
    return _message(settings, confirmation.email, subject, body, unsubscribe, now)


async def send_confirmation(settings: Settings, confirmation: Confirmation, now: datetime) -> bool:
    """The confirmation mail; False (logged) when it could not be sent."""
    outcome = await send_message(
        settings, confirmation_message(settings, confirmation, now), [confirmation.email]
    )
    if not outcome.delivered:
        log.warning("status page subscription confirmation not sent: %s", outcome.error)
    return outcome.delivered


def notice_message(settings: Settings, mail: _Mail, now: datetime) -> EmailMessage:
    happening, page = mail.happening, mail.page
    components = (
        list(page.names.values())
        if happening.components is None
        else [page.names[c] for c in page.names if c in happening.components]
    )
    unsubscribe = unsubscribe_url(settings, page.slug, mail.unsubscribe_token)
    lines = [
        happening.title,
        "",
        f"{happening.headline} ({iso(happening.at)}): {happening.message}",
        "",
    ]
    if components:
        lines.append(f"Affected: {', '.join(components)}")
    lines += [
        f"Status page: {page_url(settings, page.slug)}",
        "",
        f"You are receiving this because you subscribed to {page.name}.",
        f"Unsubscribe: {unsubscribe}",
    ]
    subject = f"[{page.name}] {happening.headline}: {happening.title}"
    return _message(settings, mail.email, subject, "\n".join(lines) + "\n", unsubscribe, now)


async def _pages(session: AsyncSession) -> dict[str, _Page]:
    """Public pages with a confirmed subscriber, and their components' names."""
    rows = await session.execute(
        select(StatusPage.id, StatusPage.name, StatusPage.slug).where(
            StatusPage.is_public.is_(True),
            StatusPage.id.in_(select(PageSubscriber.page_id).where(PageSubscriber.confirmed_at.is_not(None))),
        )
    )
    pages = {page_id: _Page(page_id, name, slug, {}) for page_id, name, slug in rows.all()}
    if pages:
        for component in await session.scalars(
            select(StatusPageComponent)
            .where(StatusPageComponent.page_id.in_(list(pages)))
            .order_by(StatusPageComponent.position, StatusPageComponent.display_name, StatusPageComponent.id)
        ):
            pages[component.page_id].names[component.id] = component.display_name
    return pages


async def _automatic(
    session: AsyncSession, components: Sequence[StatusPageComponent], since: datetime
) -> list[Happening]:
    by_monitor: dict[str, list[StatusPageComponent]] = {}
    for component in components:
        by_monitor.setdefault(component.monitor_id, []).append(component)
    if not by_monitor:
        return []
    rows = await session.execute(
        select(IncidentEvent)
        .join(Incident, Incident.id == IncidentEvent.incident_id)
        .where(
            IncidentEvent.occurred_at >= since,
            IncidentEvent.type.in_(_EVENT_TYPES),
            IncidentEvent.monitor_id.in_(list(by_monitor)),
            IncidentEvent.in_maintenance.is_(False),
            IncidentEvent.suppressed_by.is_(None),
            Incident.kind == KIND_DOWN,
        )
    )
    found = []
    for event in rows.scalars():
        payload: dict[str, Any] = event.payload or {}
        if event.type == "incident.resolved" and payload.get("resolvedBy"):
            continue  # a person's "resolved" update: its own event is the mail
        for component in by_monitor[event.monitor_id]:
            name = component.display_name
            if event.type == "incident.opened":
                headline, message = "Investigating", f"{name} is not responding"
            elif event.type == "incident.resolved":
                headline, message = "Resolved", f"{name} is operational again"
            else:
                headline, message = _status_word(payload.get("status")), str(payload.get("message") or "")
            found.append(
                Happening(
                    f"iev:{event.id}",
                    component.page_id,
                    frozenset({component.id}),
                    event.occurred_at,
                    headline,
                    f"{name} is down",
                    message,
                )
            )
    return found


async def _declared(session: AsyncSession, page_ids: Sequence[str], since: datetime) -> list[Happening]:
    rows = await session.execute(
        select(PageIncidentUpdate, PageIncident)
        .join(PageIncident, PageIncident.id == PageIncidentUpdate.incident_id)
        .where(PageIncident.page_id.in_(list(page_ids)), PageIncidentUpdate.created_at >= since)
    )
    return [
        Happening(
            f"piu:{update.id}",
            incident.page_id,
            frozenset(incident.component_ids) if incident.component_ids else None,
            update.created_at,
            _status_word(update.status),
            incident.title,
            update.message,
        )
        for update, incident in rows.all()
    ]


async def _maintenance(
    session: AsyncSession, pages: dict[str, _Page], components: Sequence[StatusPageComponent], now: datetime
) -> list[Happening]:
    org_of: dict[str, str] = {
        page_id: org_id
        for page_id, org_id in (
            await session.execute(
                select(StatusPage.id, StatusPage.org_id).where(StatusPage.id.in_(list(pages)))
            )
        ).all()
    }
    windows = await session.scalars(
        select(MaintenanceWindow).where(
            MaintenanceWindow.org_id.in_(set(org_of.values())),
            MaintenanceWindow.is_active.is_(True),
            MaintenanceWindow.ends_at > now,
            or_(
                MaintenanceWindow.monitor_id.is_(None),
                MaintenanceWindow.monitor_id.in_({c.monitor_id for c in components}),
            ),
        )
    )
    found = []
    for window in windows:
        occurrence = current_or_next(Schedule.of(window), now)
        if occurrence is None:
            continue
        starts, ends = occurrence
        for page_id, org_id in org_of.items():
            if org_id != window.org_id:
                continue
            if window.monitor_id is None:
                covered: frozenset[str] | None = None
            else:
                covered = frozenset(
                    c.id for c in components if c.page_id == page_id and c.monitor_id == window.monitor_id
                )
                if not covered:
                    continue
            window_text = f"from {iso(starts)} to {iso(ends)}"
            details = f"{window_text}. {window.description}" if window.description else window_text
            if (
                starts > now
                and window.created_at >= now - LOOKBACK
                and starts - window.created_at <= (MAINTENANCE_NOTICE_AHEAD)
            ):
                found.append(
                    Happening(
                        f"mw:{window.id}:scheduled",
                        page_id,
                        covered,
                        window.created_at,
                        "Scheduled maintenance",
                        window.title,
                        details,
                    )
                )
            if starts <= now < ends and starts >= now - LOOKBACK:
                found.append(
                    Happening(
                        f"mw:{window.id}:{iso(starts)}",
                        page_id,
                        covered,
                        starts,
                        "Maintenance in progress",
                        window.title,
                        details,
                    )
                )
    return found


def _concerns(subscriber: PageSubscriber, happening: Happening) -> bool:
    if subscriber.confirmed_at is None or subscriber.confirmed_at > happening.at:
        return False
    if happening.components is None or not subscriber.component_ids:
        return True
    return not happening.components.isdisjoint(subscriber.component_ids)


async def owed(session: AsyncSession, now: datetime) -> list[_Mail]:
    """Every mail owed at `now` and not claimed yet."""
    pages = await _pages(session)
    if not pages:
        return []
    since = now - LOOKBACK
    components = list(
        await session.scalars(select(StatusPageComponent).where(StatusPageComponent.page_id.in_(list(pages))))
    )
    happenings = [
        *await _automatic(session, components, since),
        *await _declared(session, list(pages), since),
        *await _maintenance(session, pages, components, now),
    ]
    if not happenings:
        return []
    subscribers: dict[str, list[PageSubscriber]] = {}
    for subscriber in await session.scalars(
        select(PageSubscriber).where(
            PageSubscriber.page_id.in_({h.page_id for h in happenings}),
            PageSubscriber.confirmed_at.is_not(None),
        )
    ):
        subscribers.setdefault(subscriber.page_id, []).append(subscriber)
    claimed: set[tuple[str, str]] = set(
        (
            await session.execute(
                select(SubscriberNotice.subscriber_id, SubscriberNotice.happening).where(
                    SubscriberNotice.happening.in_({h.key for h in happenings})
                )
            )
        ).all()
    )
    mails = []
    for happening in sorted(happenings, key=lambda h: (h.at, h.key)):
        for subscriber in subscribers.get(happening.page_id, []):
            if (subscriber.id, happening.key) in claimed or not _concerns(subscriber, happening):
                continue
            mails.append(
                _Mail(
                    subscriber.id,
                    subscriber.email,
                    subscriber.unsubscribe_token,
                    pages[happening.page_id],
                    happening,
                )
            )
    return mails


async def _claim(db: Database, mail: _Mail, now: datetime) -> bool:
    async with db.session() as session:
        session.add(
            SubscriberNotice(subscriber_id=mail.subscriber_id, happening=mail.happening.key, claimed_at=now)
        )
        try:
            await session.commit()
        except IntegrityError:  # another replica's, or the subscriber was deleted meanwhile
            return False
    return True


async def _release(db: Database, mail: _Mail) -> None:
    async with db.session() as session:
        await session.execute(
            delete(SubscriberNotice).where(
                SubscriberNotice.subscriber_id == mail.subscriber_id,
                SubscriberNotice.happening == mail.happening.key,
            )
        )
        await session.commit()


async def notify_subscribers(db: Database, settings: Settings, now: datetime) -> NotifyRound:
    """One round: every mail owed, each claimed and sent once; a failed one released for the next."""
    if not settings.smtp_host:
        return NotifyRound(0, 0)
    async with db.session() as session:
        mails = await owed(session, now)
    limit = asyncio.Semaphore(SENDS_AT_ONCE)

    async def deliver(mail: _Mail) -> bool | None:
        if not await _claim(db, mail, now):
            return None
        async with limit:
            outcome = await send_message(settings, notice_message(settings, mail, now), [mail.email])
        if outcome.delivered:
            return True
        log.warning(
            "status page notice %s to subscriber %s not sent, retried next round: %s",
            mail.happening.key,
            mail.subscriber_id,
            outcome.error,
        )
        await _release(db, mail)
        return False

    async def deliver_in_order(mails: list[_Mail]) -> list[bool | None]:
        # One subscriber's mails one after another, in the order things happened.
        return [await deliver(mail) for mail in mails]

    by_subscriber: dict[str, list[_Mail]] = {}
    for mail in mails:
        by_subscriber.setdefault(mail.subscriber_id, []).append(mail)
    results = [
        result
        for results_of_one in await asyncio.gather(
            *(deliver_in_order(group) for group in by_subscriber.values())
        )
        for result in results_of_one
    ]
    return NotifyRound(sent=results.count(True), failed=results.count(False))
