"""Agent tokens: created by operators per region, stored hashed, revocable."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core import changes
from control_plane.core.errors import Conflict, InvalidInput, NotFound
from control_plane.core.ids import hash_secret, new_id
from control_plane.models import AgentToken, Organization

TOKENS_TOPIC = "agent_tokens"  # payload: the revoked token id
TOKEN_PREFIX = "traxo_agent_"


async def create_token(
    session: AsyncSession,
    *,
    region: str,
    now: datetime,
    org: str | None = None,
    configured_regions: Collection[str] = (),
) -> tuple[AgentToken, str]:
    """A new token for `region`; with `org` (slug or id) the region is that organization's private
    location."""
    from control_plane.domain.monitor_config import REGION_PATTERN

    if not REGION_PATTERN.match(region):
        raise InvalidInput(f"region: {region!r} must be 1-64 lowercase letters, digits and hyphens")
    org_id = None
    if org is not None:
        found = await session.scalar(
            select(Organization.id).where((Organization.id == org) | (Organization.slug == org))
        )
        if found is None:
            raise NotFound(f"organization {org!r} not found")
        org_id = found
    # A region name is either public or one organization's private location, never both.
    owners = set(
        await session.scalars(
            select(AgentToken.org_id).where(AgentToken.region == region, AgentToken.revoked_at.is_(None))
        )
    )
    if org_id is not None and region in configured_regions:
        owners.add(None)  # a region from TRAXO_REGIONS is public
    if owners and owners != {org_id}:
        kind = "a public region" if None in owners else "another organization's private location"
        raise Conflict(f"region: {region!r} is already {kind}")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = AgentToken(
        id=new_id("tok"),
        region=region,
        org_id=org_id,
        token_hash=hash_secret(raw),
        prefix=raw[: len(TOKEN_PREFIX) + 2],
        last4=raw[-4:],
        created_at=now,
    )
    session.add(token)
    await session.commit()
    return token, raw


async def revoke_token(session: AsyncSession, token_id: str, *, now: datetime) -> None:
    result = await session.execute(
        update(AgentToken)
        .where(AgentToken.id == token_id, AgentToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise NotFound(f"agent token {token_id!r} not found or already revoked")
    await changes.publish(session, TOKENS_TOPIC, token_id)
    await session.commit()


async def list_tokens(session: AsyncSession) -> Sequence[AgentToken]:
    return (await session.scalars(select(AgentToken).order_by(AgentToken.created_at))).all()


async def authenticate_token(session: AsyncSession, raw: str) -> AgentToken | None:
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    return await session.scalar(
        select(AgentToken).where(AgentToken.token_hash == hash_secret(raw), AgentToken.revoked_at.is_(None))
    )
