"""Agents and their leases: one agent per token and name, whatever process registers as it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core import changes
from control_plane.core.ids import new_id
from control_plane.models import Agent, AgentToken
from traxo_protocol.capabilities import KNOWN_CAPABILITIES

AGENTS_TOPIC = "agents"  # payload: "agent_id:incarnation", a registration that fences older ones


@dataclass(frozen=True, slots=True)
class Registration:
    agent_id: str
    member_key: str
    region: str
    token_id: str
    org_id: str | None
    # Which registration of the agent: streams opened under an older one are ended.
    incarnation: int


@dataclass(frozen=True, slots=True)
class Registered:
    registration: Registration
    # The region's live membership may have changed (a new agent, one back from a lapsed lease, or
    # other capabilities): rebalance it. A restart or reconnect of a live agent changes nothing.
    joined: bool


def member_key(token_id: str, name: str) -> str:
    return f"{token_id}/{name}"


def _registration(agent: Agent, token: AgentToken) -> Registration:
    return Registration(agent.id, agent.member_key, agent.region, token.id, token.org_id, agent.incarnation)


async def register(
    session: AsyncSession,
    token: AgentToken,
    *,
    name: str,
    version: str,
    capabilities: list[str],
    now: datetime,
) -> Registered:
    """Register the agent of this token and name; commits.

    The first registration creates the agent; every later one (a restarted or reconnecting agent)
    is the same agent, with the same id, and starts a new incarnation. Two live processes using one
    name and token are indistinguishable to the protocol (they would send the same agent id), so the
    newest registration wins: the coordinator ends the older incarnation's streams, and that
    process registers again (and takes over in turn). Two such processes thus take turns rather than
    both hold the agent's streams, and each stream ended so is logged as a warning. (The alternative,
    refusing a second registration while the first holds the lease, would keep a restarted agent out
    until its old lease lapsed.) Fencing goes by streams: a process that registered just before the
    other and opens its streams just after it is not told apart.
    """
    key = member_key(token.id, name)
    kept_capabilities = sorted(set(capabilities) & KNOWN_CAPABILITIES)
    this_agent = (Agent.token_id == token.id, Agent.name == name)
    for _ in range(2):  # a first registration racing another one of the same name takes it over
        before = (
            await session.execute(select(Agent.lapsed_at, Agent.capabilities).where(*this_agent))
        ).first()
        # One statement: concurrent registrations each count an incarnation (SQLite reads outside
        # the write's transaction, so a read-modify-write here could lose one).
        renewed = await session.execute(
            update(Agent)
            .where(*this_agent)
            .values(
                incarnation=Agent.incarnation + 1,
                version=version,
                capabilities=kept_capabilities,
                registered_at=now,
                renewed_at=now,
                lapsed_at=None,
            )
        )
        joined = before is None or before.lapsed_at is not None or before.capabilities != kept_capabilities
        if not renewed.rowcount:  # type: ignore[attr-defined]
            session.add(
                Agent(
                    id=new_id("agt"),
                    token_id=token.id,
                    member_key=key,
                    name=name,
                    region=token.region,
                    version=version,
                    capabilities=kept_capabilities,
                    incarnation=1,
                    registered_at=now,
                    renewed_at=now,
                )
            )
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                continue
            joined = True
        # Read back under the write's lock (this transaction's own row version).
        agent_id, incarnation = (
            await session.execute(select(Agent.id, Agent.incarnation).where(*this_agent))
        ).one()
        await changes.publish(session, AGENTS_TOPIC, f"{agent_id}:{incarnation}")
        await session.commit()
        registration = Registration(agent_id, key, token.region, token.id, token.org_id, incarnation)
        return Registered(registration, joined)
    raise RuntimeError(f"registering agent {name!r} kept conflicting with concurrent registrations")


async def current_registration(
    session: AsyncSession, token: AgentToken, agent_id: str
) -> Registration | None:
    agent = await session.scalar(
        select(Agent).where(Agent.id == agent_id, Agent.token_id == token.id, Agent.lapsed_at.is_(None))
    )
    return None if agent is None else _registration(agent, token)


async def expire_lapsed(
    session: AsyncSession,
    region: str,
    *,
    cutoff: datetime,
    now: datetime,
    spared_before: datetime | None = None,
) -> int:
    """Mark agents that stopped renewing as lapsed, so a late renewal is told to register again.

    Those last renewed before `spared_before` are left alone (a restarted control plane's grace)."""
    lapsed: list[ColumnElement[bool]] = [
        Agent.region == region,
        Agent.lapsed_at.is_(None),
        Agent.renewed_at < cutoff,
    ]
    if spared_before is not None:
        lapsed.append(Agent.renewed_at >= spared_before)
    result = await session.execute(update(Agent).where(*lapsed).values(lapsed_at=now))
    await session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def any_registration(session: AsyncSession, token: AgentToken, agent_id: str) -> Registration | None:
    """An agent of this token, lapsed or not: results it produced stay attributable."""
    agent = await session.scalar(select(Agent).where(Agent.id == agent_id, Agent.token_id == token.id))
    return None if agent is None else _registration(agent, token)
