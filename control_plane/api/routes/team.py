"""/api/team: members of the caller's organization."""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.api.deps import MemberDep, NowDep, OrgWriterDep, SessionDep
from control_plane.api.openapi import errors
from control_plane.api.org_responses import TeamInviteResponse, TeamMemberListResponse, member_out
from control_plane.api.responses import (
    JsonResponse,
    MessageResponse,
    data_message_response,
    data_response,
    message_response,
)
from control_plane.api.schemas import TeamInvite
from control_plane.domain.roles import Role
from control_plane.services import team

router = APIRouter(prefix="/api/team", tags=["team"])


@router.get("", response_model=TeamMemberListResponse)
async def list_team_members(member: MemberDep, session: SessionDep) -> JsonResponse:
    rows = await team.list_members(session, member.org_id)
    return data_response([member_out(membership, user) for membership, user in rows])


@router.post(
    "/invite",
    status_code=201,
    response_model=TeamInviteResponse,
    responses=errors(
        (404, "No Traxo user has this email: they must create an account first"),
        (409, "The user already belongs to an organization"),
    ),
)
async def invite_member(
    body: TeamInvite, member: OrgWriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    """Adds an existing Traxo user to the organization (OWNER or ADMIN only)."""
    membership, user = await team.invite_member(
        session, member.org_id, email=body.email, role=Role(body.role), now=now
    )
    return data_message_response(
        member_out(membership, user), "Team member invited successfully", status_code=201
    )


@router.delete(
    "/{member_id}",
    response_model=MessageResponse,
    responses=errors(
        (400, "The member is you: you cannot remove yourself"),
        (403, "The member is the organization's owner"),
        (404, "Team member not found"),
    ),
)
async def remove_member(member_id: str, member: OrgWriterDep, session: SessionDep) -> JsonResponse:
    """Removes a member (OWNER or ADMIN only); not yourself, nor the owner."""
    await team.remove_member(session, member.org_id, member_id=member_id, acting_user_id=member.user_id)
    return message_response("Team member removed successfully")
