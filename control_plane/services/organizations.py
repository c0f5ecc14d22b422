"""Organizations: creation with an owner, renaming, and lookups for operators."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core import changes
from control_plane.core.errors import Conflict, NotFound
from control_plane.core.ids import new_id
from control_plane.models import Membership, Organization, Role
from control_plane.services.accounts import AUTH_TOPIC
from control_plane.settings import Plan


async def create_organization(
    session: AsyncSession, *, user_id: str, name: str, slug: str, plan: Plan, now: datetime
) -> Organization:
    if await session.scalar(select(Membership.id).where(Membership.user_id == user_id)):
        raise Conflict("You already belong to an organization; a user can only belong to one")
    await _ensure_slug_free(session, slug)
    org = Organization(
        id=new_id("org"), name=name, slug=slug, plan=plan.value, created_at=now, updated_at=now
    )
    membership = Membership(id=new_id("mem"), org_id=org.id, user_id=user_id, role=Role.OWNER, joined_at=now)
    await _commit_or_conflict(session, slug, org, membership)
    return org


async def get_organization(session: AsyncSession, org_id: str) -> Organization:
    org = await session.get(Organization, org_id)
    if org is None:
        raise NotFound("Organization not found")
    return org


async def update_organization(
    session: AsyncSession, org_id: str, *, name: str | None, slug: str | None, now: datetime
) -> Organization:
    org = await get_organization(session, org_id)
    if slug is not None and slug != org.slug:
        await _ensure_slug_free(session, slug)
        org.slug = slug
    if name is not None:
        org.name = name
    org.updated_at = now
    await _commit_or_conflict(session, slug or org.slug)
    return org


async def find_organization(session: AsyncSession, slug_or_id: str) -> Organization:
    org = await session.scalar(
        select(Organization).where((Organization.slug == slug_or_id) | (Organization.id == slug_or_id))
    )
    if org is None:
        raise NotFound(f"Organization {slug_or_id!r} not found")
    return org


async def _ensure_slug_free(session: AsyncSession, slug: str) -> None:
    if await session.scalar(select(Organization.id).where(Organization.slug == slug)):
        raise Conflict(f"slug: an organization with slug {slug!r} already exists")


async def _commit_or_conflict(session: AsyncSession, slug: str, *rows: Organization | Membership) -> None:
    # The unique constraints decide races that the checks above could not see.
    try:
        await changes.publish(session, AUTH_TOPIC)  # principals carry the organization and role
        for row in rows:  # in order: the membership's foreign key needs its organization first
            session.add(row)
            await session.flush()
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        message = str(exc.orig).lower()
        if "organizations.slug" in message or "uq_organizations_slug" in message:
            raise Conflict(f"slug: an organization with slug {slug!r} already exists") from exc
        if "memberships.user_id" in message or "uq_memberships_user_id" in message:
            raise Conflict("You already belong to an organization; a user can only belong to one") from exc
        raise
