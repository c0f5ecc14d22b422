"""Agent registrations and leases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.ids import new_id
from control_plane.models import Agent, AgentToken

KNOWN_CAPABILITIES = frozenset({"http", "tcp", "icmp", "dns", "ssl", "browser"})


@dataclass(frozen=True, slots=True)
class Registration:
    agent_id: str
    member_key: str
    region: str
    token_id: str
    org_id: str | None


def member_key(token_id: str, name: str) -> str:
    return f"{token_id}/{name}"


async def register(
    session: AsyncSession,
    token: AgentToken,
    *,
    name: str,
    version: str,
    capabilities: list[str],
    now: datetime,
) -> Registration:
    """A new registration; an older one of the same member (a restarted or reconnecting agent) ends."""
    key = member_key(token.id, name)
    await session.execute(
        update(Agent).where(Agent.member_key == key, Agent.superseded_at.is_(None)).values(superseded_at=now)
    )
    agent = Agent(
        id=new_id("agt"),
        token_id=token.id,
        member_key=key,
        name=name,
        region=token.region,
        version=version,
        capabilities=sorted(set(capabilities) & KNOWN_CAPABILITIES),
        registered_at=now,
        renewed_at=now,
    )
    session.add(agent)
    await session.commit()
    return Registration(agent.id, key, token.region, token.id, token.org_id)


async def renew(session: AsyncSession, token: AgentToken, agent_id: str, *, now: datetime) -> bool:
    """True when the lease is still this registration's (not superseded, not judged lapsed)."""
    result = await session.execute(
        update(Agent)
        .where(Agent.id == agent_id, Agent.token_id == token.id, Agent.superseded_at.is_(None))
        .values(renewed_at=now)
    )
    await session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def current_registration(
    session: AsyncSession, token: AgentToken, agent_id: str
) -> Registration | None:
    agent = await session.scalar(
        select(Agent).where(Agent.id == agent_id, Agent.token_id == token.id, Agent.superseded_at.is_(None))
    )
    if agent is None:
        return None
    return Registration(agent.id, agent.member_key, agent.region, token.id, token.org_id)


async def expire_lapsed(
    session: AsyncSession,
    region: str,
    *,
    cutoff: datetime,
    now: datetime,
    spared_before: datetime | None = None,
) -> int:
    """Mark registrations that stopped renewing as over, so a late renewal is told to register again.

    Those last renewed before `spared_before` are left alone (a restarted control plane's grace)."""
    lapsed: list[ColumnElement[bool]] = [
        Agent.region == region,
        Agent.superseded_at.is_(None),
        Agent.renewed_at < cutoff,
    ]
    if spared_before is not None:
        lapsed.append(Agent.renewed_at >= spared_before)
    result = await session.execute(update(Agent).where(*lapsed).values(superseded_at=now))
    await session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def any_registration(session: AsyncSession, token: AgentToken, agent_id: str) -> Registration | None:
    """A registration of this token, current or superseded: results it produced stay attributable."""
    agent = await session.scalar(select(Agent).where(Agent.id == agent_id, Agent.token_id == token.id))
    if agent is None:
        return None
    return Registration(agent.id, agent.member_key, agent.region, token.id, token.org_id)
