"""Team membership: listing, inviting existing users, removing members."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core import changes
from control_plane.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from control_plane.core.ids import new_id
from control_plane.models import Membership, Role, User
from control_plane.services.accounts import AUTH_TOPIC


async def list_members(session: AsyncSession, org_id: str) -> list[tuple[Membership, User]]:
    result = await session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org_id)
        .order_by(Membership.joined_at, Membership.id)
    )
    return [(membership, user) for membership, user in result.all()]


async def invite_member(
    session: AsyncSession, org_id: str, *, email: str, role: Role, now: datetime
) -> tuple[Membership, User]:
    user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"email: no Traxo user with email {email!r}; they must create an account first")
    if await session.scalar(select(Membership.id).where(Membership.user_id == user.id)):
        raise Conflict(f"email: {email!r} is already a member of an organization")
    membership = Membership(id=new_id("mem"), org_id=org_id, user_id=user.id, role=role, joined_at=now)
    session.add(membership)
    await changes.publish(session, AUTH_TOPIC)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"email: {email!r} is already a member of an organization") from exc
    return membership, user


async def remove_member(session: AsyncSession, org_id: str, *, member_id: str, acting_user_id: str) -> None:
    membership = await session.scalar(
        select(Membership).where(Membership.id == member_id, Membership.org_id == org_id)
    )
    if membership is None:
        raise NotFound("Team member not found")
    if membership.user_id == acting_user_id:
        raise InvalidInput("memberId: you cannot remove yourself from the organization")
    if membership.role == Role.OWNER:
        raise Forbidden("The organization owner cannot be removed")
    await session.execute(delete(Membership).where(Membership.id == membership.id))
    await changes.publish(session, AUTH_TOPIC)
    await session.commit()
