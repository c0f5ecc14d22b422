"""Status pages: a public page of an organization's monitors (its components), its custom domain
and that domain's verification, and the incidents people declare on it by hand."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.timefmt import utcnow
from control_plane.db import Base, UTCDateTime


class StatusPage(Base):
    """A page, found by its slug (unique across every organization: it is in public URLs) or by
    its custom domain once verified."""

    __tablename__ = "status_pages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # sp_...
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(50), unique=True)
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    # Lowercase, without a trailing dot. Unique: one page answers for a host.
    custom_domain: Mapped[str | None] = mapped_column(String(253), unique=True, default=None)
    # The TXT value `POST …/verify-domain` handed out for custom_domain, and when it was found.
    # Changing custom_domain clears both.
    domain_verification_token: Mapped[str | None] = mapped_column(String(100), default=None)
    domain_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    hide_branding: Mapped[bool] = mapped_column(Boolean, default=False)  # BUSINESS and ENTERPRISE
    custom_css: Mapped[str | None] = mapped_column(Text, default=None)  # BUSINESS and ENTERPRISE
    logo_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    favicon_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_status_pages_org_id_created_at", "org_id", "created_at"),)


class StatusPageComponent(Base):
    """A monitor shown on a page: under its own name, in its place, optionally in a group."""

    __tablename__ = "status_page_components"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # spc_...
    page_id: Mapped[str] = mapped_column(ForeignKey("status_pages.id", ondelete="CASCADE"))
    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)  # the API's `order`
    group_name: Mapped[str | None] = mapped_column(String(100), default=None)  # the API's `group`

    __table_args__ = (
        UniqueConstraint("page_id", "monitor_id", name="uq_status_page_components_page_id_monitor_id"),
        Index("ix_status_page_components_monitor_id", "monitor_id"),
    )


class PageIncident(Base):
    """An incident declared by hand on a page, for some of its components: its title, impact and
    timeline (as an automatic incident's: investigating, identified, monitoring, resolved), and a
    post-mortem in Markdown once it is over."""

    __tablename__ = "page_incidents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # inc_...
    org_id: Mapped[str] = mapped_column(String(40))
    page_id: Mapped[str] = mapped_column(ForeignKey("status_pages.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    impact: Mapped[str] = mapped_column(String(16))  # none | minor | major | critical
    status: Mapped[str] = mapped_column(String(16), default="investigating")
    component_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # spc_... of this page
    postmortem: Mapped[str | None] = mapped_column(Text, default=None)  # Markdown, rendered sanitised
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_by: Mapped[str | None] = mapped_column(String(40), default=None)  # a user id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_page_incidents_page_id_started_at", "page_id", "started_at"),)


class PageIncidentUpdate(Base):
    """One entry of a declared incident's timeline: a status and what people said."""

    __tablename__ = "page_incident_updates"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("page_incidents.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    author_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_page_incident_updates_incident_id_created_at", "incident_id", "created_at"),)


class PageSubscriber(Base):
    """Someone who asked for a page's notices by email: to the whole page (no components) or to
    some of its components. Active once confirmed (double opt-in): the confirmation token is kept
    only as its SHA-256 and expires. The unsubscribe token is kept as is, since every mail carries
    it; it can only end this subscription."""

    __tablename__ = "status_page_subscribers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # sub_...
    page_id: Mapped[str] = mapped_column(ForeignKey("status_pages.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))  # lowercased
    component_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # spc_...; empty: the page
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    confirm_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    confirm_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    unsubscribe_token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("page_id", "email", name="uq_status_page_subscribers_page_id_email"),
        Index("ix_status_page_subscribers_page_id_created_at", "page_id", "created_at"),
    )


class SubscriberNotice(Base):
    """One mail owed to one subscriber for one happening on the page (an incident event, a
    declared incident's update, a maintenance window scheduled or starting): claimed by inserting
    this row before the mail goes (the primary key makes it once, whatever the replicas), deleted
    again when the send fails so the next round retries."""

    __tablename__ = "status_page_notices"

    subscriber_id: Mapped[str] = mapped_column(
        ForeignKey("status_page_subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    happening: Mapped[str] = mapped_column(String(120), primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
