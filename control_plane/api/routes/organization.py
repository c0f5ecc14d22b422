"""/api/organization: the caller's organization."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from control_plane.api.deps import MemberDep, OrgWriterDep, RuntimeDep, SessionDep, WriterDep
from control_plane.api.schemas import OrganizationCreate, OrganizationUpdate, organization_out
from control_plane.services import organizations

router = APIRouter(prefix="/api/organization", tags=["organization"])


@router.get("")
async def get_organization(member: MemberDep) -> dict[str, Any]:
    # The organization was read in the same query that authenticated the key.
    return {"data": organization_out(member.org)}


@router.post("", status_code=201)
async def create_organization(
    body: OrganizationCreate, principal: WriterDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    org = await organizations.create_organization(
        session,
        user_id=principal.user_id,
        name=body.name,
        slug=body.slug,
        plan=runtime.settings.default_plan,
    )
    return {"data": organization_out(org, "id", "name", "slug", "createdAt")}


@router.patch("")
async def update_organization(
    body: OrganizationUpdate, member: OrgWriterDep, session: SessionDep
) -> dict[str, Any]:
    org = await organizations.update_organization(session, member.org_id, name=body.name, slug=body.slug)
    return {"data": organization_out(org, "id", "name", "slug", "plan")}
