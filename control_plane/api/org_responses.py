"""Responses about the organization, its API keys, its team and its dashboard figures, as the
OpenAPI document states them, and the serializers that build them (checked against them by mypy)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, with_config
from typing_extensions import TypedDict

from control_plane.api.responses import CLOSED, Data, DataWithMessage, Timestamp, iso_at, one_of
from control_plane.core.timefmt import iso
from control_plane.models import ApiKey, Membership, Organization, Role, User
from control_plane.services.accounts import OrgSnapshot, mask_key
from control_plane.services.dashboard import DashboardStats
from control_plane.settings import Plan

PlanName = Annotated[str, one_of(*Plan)]


@with_config(CLOSED)
class OrganizationOut(TypedDict):
    id: str
    name: str
    slug: str
    plan: PlanName
    createdAt: Timestamp


@with_config(CLOSED)
class OrganizationCreatedOut(TypedDict):
    id: str
    name: str
    slug: str
    createdAt: Timestamp


@with_config(CLOSED)
class OrganizationUpdatedOut(TypedDict):
    id: str
    name: str
    slug: str
    plan: PlanName


@with_config(CLOSED)
class ApiKeyOut(TypedDict):
    id: str
    name: str
    key: Annotated[str, Field(description="The whole key when created; afterwards its prefix and last 4")]
    lastUsed: Timestamp | None
    createdAt: Timestamp
    expiresAt: Timestamp | None


@with_config(CLOSED)
class TeamMemberOut(TypedDict):
    id: str
    userId: str
    role: Annotated[str, one_of(*Role)]
    name: str
    email: str
    image: str | None
    joinedAt: Timestamp


@with_config(CLOSED)
class DashboardStatsOut(TypedDict):
    totalMonitors: int
    currentlyDown: int
    avgUptime: Annotated[float | None, Field(description="Percent over 30 days; null before any check")]
    incidentsToday: int


class OrganizationResponse(Data[OrganizationOut]):
    pass


class OrganizationCreatedResponse(Data[OrganizationCreatedOut]):
    pass


class OrganizationUpdatedResponse(Data[OrganizationUpdatedOut]):
    pass


class ApiKeyResponse(Data[ApiKeyOut]):
    pass


class ApiKeyListResponse(Data[list[ApiKeyOut]]):
    pass


class TeamMemberListResponse(Data[list[TeamMemberOut]]):
    pass


class TeamInviteResponse(DataWithMessage[TeamMemberOut]):
    pass


class DashboardStatsResponse(Data[DashboardStatsOut]):
    pass


def organization_out(org: Organization | OrgSnapshot) -> OrganizationOut:
    return {
        "id": org.id,
        "name": org.name,
        "slug": org.slug,
        "plan": org.plan,
        "createdAt": iso_at(org.created_at),
    }


def organization_created_out(org: Organization) -> OrganizationCreatedOut:
    return {"id": org.id, "name": org.name, "slug": org.slug, "createdAt": iso_at(org.created_at)}


def organization_updated_out(org: Organization) -> OrganizationUpdatedOut:
    return {"id": org.id, "name": org.name, "slug": org.slug, "plan": org.plan}


def api_key_out(key: ApiKey, *, raw_key: str | None = None) -> ApiKeyOut:
    return {
        "id": key.id,
        "name": key.name,
        "key": raw_key or mask_key(key.prefix, key.last4),
        "lastUsed": iso(key.last_used_at),
        "createdAt": iso_at(key.created_at),
        "expiresAt": iso(key.expires_at),
    }


def member_out(membership: Membership, user: User) -> TeamMemberOut:
    return {
        "id": membership.id,
        "userId": user.id,
        "role": membership.role,
        "name": user.name,
        "email": user.email,
        "image": user.image,
        "joinedAt": iso_at(membership.joined_at),
    }


def dashboard_stats_out(figures: DashboardStats) -> DashboardStatsOut:
    return {
        "totalMonitors": figures.total_monitors,
        "currentlyDown": figures.currently_down,
        "avgUptime": figures.avg_uptime,
        "incidentsToday": figures.incidents_today,
    }
