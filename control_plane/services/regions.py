"""Regions a monitor may name: those configured on this server (TRAXO_REGIONS)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.settings import Settings


async def known_regions(session: AsyncSession, settings: Settings, org_id: str) -> list[str]:
    # Agent tokens will add their regions here (and org-scoped tokens private locations).
    del session, org_id
    return sorted(set(settings.regions))
