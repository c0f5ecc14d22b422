"""Regions a monitor may name: the server's configured ones, those with agent tokens, and the
caller's own private locations (org-scoped tokens)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.models import AgentToken
from control_plane.settings import Settings


async def known_regions(session: AsyncSession, settings: Settings, org_id: str) -> list[str]:
    token_regions = await session.scalars(
        select(AgentToken.region)
        .where(AgentToken.revoked_at.is_(None), or_(AgentToken.org_id.is_(None), AgentToken.org_id == org_id))
        .distinct()
    )
    return sorted(set(settings.regions) | set(token_regions))
