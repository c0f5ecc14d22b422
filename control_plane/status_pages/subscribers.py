"""A public page's email subscribers: double opt-in (a confirmation link, its token 128 random
bits kept only as its SHA-256, valid 48 hours), to the whole page or some of its components, and an
unsubscribe link in every mail that ends the subscription at once.

Subscribing never tells whether an address is already subscribed: an active subscription is left
as it is and mailed nothing, the same answer as for a new address. Owners list and delete their
pages' subscribers.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.errors import InvalidInput, NotFound
from control_plane.core.ids import new_id
from control_plane.models.status_pages import PageSubscriber, StatusPage, StatusPageComponent
from control_plane.status_pages.pages import find_page
from control_plane.status_pages.public import page_by_slug

CONFIRM_HOURS = 48
NOT_FOUND = "Subscriber not found"
INVALID_LINK = "This link is not valid, or has expired: subscribe again to get a new one"


def _token() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the confirmation mail needs; None from subscribe() when no mail is owed."""

    page_name: str
    page_slug: str
    email: str
    confirm_token: str
    unsubscribe_token: str


async def _component_ids(session: AsyncSession, page_id: str, wanted: Sequence[str]) -> list[str]:
    if not wanted:
        return []
    known = set(
        await session.scalars(
            select(StatusPageComponent.id).where(
                StatusPageComponent.page_id == page_id, StatusPageComponent.id.in_(list(wanted))
            )
        )
    )
    unknown = [component_id for component_id in wanted if component_id not in known]
    if unknown:
        raise InvalidInput(f"components: not components of this page: {', '.join(unknown[:10])}")
    return list(dict.fromkeys(wanted))


async def subscribe(
    session: AsyncSession, page: StatusPage, email: str, components: Sequence[str], now: datetime
) -> Confirmation | None:
    """A pending subscription with a fresh confirmation token (an unconfirmed one is renewed, its
    components replaced); None for an address already subscribed, which is left as it was."""
    component_ids = await _component_ids(session, page.id, components)
    email = email.strip().lower()
    confirm_token = _token()
    existing = await session.scalar(
        select(PageSubscriber).where(PageSubscriber.page_id == page.id, PageSubscriber.email == email)
    )
    if existing is not None and existing.confirmed_at is not None:
        return None
    if existing is None:
        existing = PageSubscriber(
            id=new_id("sub"),
            page_id=page.id,
            email=email,
            unsubscribe_token=_token(),
            created_at=now,
        )
        session.add(existing)
    existing.component_ids = component_ids
    existing.confirm_token_hash = token_hash(confirm_token)
    existing.confirm_expires_at = now + timedelta(hours=CONFIRM_HOURS)
    try:
        await session.commit()
    except IntegrityError:  # the same address subscribing twice at once: the other one won
        await session.rollback()
        return None
    return Confirmation(page.name, page.slug, email, confirm_token, existing.unsubscribe_token)


_INVALID_UNSUBSCRIBE = "This unsubscribe link is not valid (or the address is already unsubscribed)"


async def _public_page(session: AsyncSession, slug: str) -> StatusPage:
    page = await page_by_slug(session, slug)
    if page is None or not page.is_public:
        raise NotFound("No public status page has this slug")
    return page


async def confirm(session: AsyncSession, slug: str, token: str, now: datetime) -> StatusPage:
    """Makes the subscription the token names active; InvalidInput for an unknown or expired
    token (a used one is unknown: it is cleared once confirmed)."""
    page = await _public_page(session, slug)
    subscriber = await session.scalar(
        select(PageSubscriber).where(
            PageSubscriber.page_id == page.id, PageSubscriber.confirm_token_hash == token_hash(token)
        )
    )
    if subscriber is None or subscriber.confirm_expires_at is None or subscriber.confirm_expires_at <= now:
        raise InvalidInput(INVALID_LINK)
    subscriber.confirmed_at = now
    subscriber.confirm_token_hash = None
    subscriber.confirm_expires_at = None
    await session.commit()
    return page


async def unsubscribe_target(session: AsyncSession, slug: str, token: str) -> StatusPage:
    """The page whose subscription the token names, changing nothing: what the unsubscribe link's
    GET shows before its button posts (a mail scanner that follows links must not unsubscribe)."""
    page = await _public_page(session, slug)
    found = await session.scalar(
        select(PageSubscriber.id).where(
            PageSubscriber.page_id == page.id, PageSubscriber.unsubscribe_token == token
        )
    )
    if found is None:
        raise InvalidInput(_INVALID_UNSUBSCRIBE)
    return page


async def unsubscribe(session: AsyncSession, slug: str, token: str) -> StatusPage:
    """Ends the subscription the token names (it is deleted: nothing is mailed to it again)."""
    page = await _public_page(session, slug)
    result = await session.execute(
        delete(PageSubscriber).where(
            PageSubscriber.page_id == page.id, PageSubscriber.unsubscribe_token == token
        )
    )
    await session.commit()
    if getattr(result, "rowcount", 0) != 1:
        raise InvalidInput(_INVALID_UNSUBSCRIBE)
    return page


async def list_subscribers(
    session: AsyncSession, org_id: str, slug: str, page: int, limit: int
) -> tuple[list[PageSubscriber], int]:
    """A page of the organization's page's subscribers, newest first, and how many there are."""
    status_page = await find_page(session, org_id, slug)
    of_page = PageSubscriber.page_id == status_page.id
    total = await session.scalar(select(func.count()).select_from(PageSubscriber).where(of_page)) or 0
    rows = await session.scalars(
        select(PageSubscriber)
        .where(of_page)
        .order_by(PageSubscriber.created_at.desc(), PageSubscriber.id.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return list(rows), total


async def delete_subscriber(session: AsyncSession, org_id: str, slug: str, subscriber_id: str) -> None:
    status_page = await find_page(session, org_id, slug)
    result = await session.execute(
        delete(PageSubscriber).where(
            PageSubscriber.page_id == status_page.id, PageSubscriber.id == subscriber_id
        )
    )
    await session.commit()
    if getattr(result, "rowcount", 0) != 1:
        raise NotFound(NOT_FOUND)
