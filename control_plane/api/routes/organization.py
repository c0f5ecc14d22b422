"""/api/organization: the caller's organization."""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.api.deps import MemberDep, NowDep, OrgWriterDep, RuntimeDep, SessionDep, WriterDep
from control_plane.api.openapi import errors
from control_plane.api.org_responses import (
    OrganizationCreatedResponse,
    OrganizationResponse,
    OrganizationUpdatedResponse,
    organization_created_out,
    organization_out,
    organization_updated_out,
)
from control_plane.api.responses import JsonResponse, data_response
from control_plane.api.schemas import OrganizationCreate, OrganizationUpdate
from control_plane.services import organizations

router = APIRouter(prefix="/api/organization", tags=["organization"])

_SLUG_TAKEN = (409, "The slug is taken")


@router.get("", response_model=OrganizationResponse)
async def get_organization(member: MemberDep) -> JsonResponse:
    # The organization was read in the same query that authenticated the key.
    return data_response(organization_out(member.org))


@router.post(
    "",
    status_code=201,
    response_model=OrganizationCreatedResponse,
    responses=errors((409, "The slug is taken, or you already belong to an organization")),
)
async def create_organization(
    body: OrganizationCreate, principal: WriterDep, session: SessionDep, runtime: RuntimeDep
) -> JsonResponse:
    """The caller becomes its OWNER; a user belongs to one organization at most."""
    org = await organizations.create_organization(
        session,
        user_id=principal.user_id,
        name=body.name,
        slug=body.slug,
        plan=runtime.settings.default_plan,
        now=runtime.clock(),
    )
    return data_response(organization_created_out(org), status_code=201)


@router.patch("", response_model=OrganizationUpdatedResponse, responses=errors(_SLUG_TAKEN))
async def update_organization(
    body: OrganizationUpdate, member: OrgWriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    org = await organizations.update_organization(
        session, member.org_id, name=body.name, slug=body.slug, now=now
    )
    return data_response(organization_updated_out(org))
