"""Agents in regions: their tokens, registrations and the grants that assign monitors to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.timefmt import utcnow
from control_plane.db import Base, UTCDateTime
from control_plane.domain.roles import Role as Role  # the column type; importers of models keep it


class AgentToken(Base):
    """Lets agents of one region connect; org-scoped tokens make a private location of that org."""

    __tablename__ = "agent_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    region: Mapped[str] = mapped_column(String(64), index=True)
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), default=None
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    last4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Agent(Base):
    """An agent: one per token and agent name, so a restarted agent (same token, same name) is the
    same agent, with the same id, member key and share of its region's monitors. Each registration
    counts an incarnation; streams opened under an older one are ended (agents/registry.py)."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("agent_tokens.id", ondelete="CASCADE"))
    member_key: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(128))
    region: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    capabilities: Mapped[list[str]] = mapped_column(JSON)
    incarnation: Mapped[int] = mapped_column(BigInteger, server_default="1")
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when its lease lapsed; a later registration clears it.
    lapsed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (
        UniqueConstraint("token_id", "name", name="uq_agents_token_id_name"),
        Index("ix_agents_region_lapsed_at", "region", "lapsed_at"),
        Index("ix_agents_member_key", "member_key"),
    )


class AssignmentGrant(Base):
    """Monitor M runs in region R on member K under epoch E, from granted_at until revoked_at.

    Epochs only grow per monitor and region, so a result carrying an epoch says exactly which
    grant it ran under; results scheduled after that grant's revocation are fenced off.
    """

    __tablename__ = "assignment_grants"

    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True)
    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    member_key: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (
        Index("ix_assignment_grants_member_key_revoked_at", "member_key", "revoked_at"),
        Index("ix_assignment_grants_region_revoked_at", "region", "revoked_at"),
    )
