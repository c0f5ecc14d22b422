"""/api/team: members of the caller's organization."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from control_plane.api.deps import MemberDep, OrgWriterDep, SessionDep
from control_plane.api.schemas import TeamInvite, member_out
from control_plane.models import Role
from control_plane.services import team

router = APIRouter(prefix="/api/team", tags=["team"])


@router.get("")
async def list_team(member: MemberDep, session: SessionDep) -> dict[str, Any]:
    rows = await team.list_members(session, member.org_id)
    return {"data": [member_out(membership, user) for membership, user in rows]}


@router.post("/invite", status_code=201)
async def invite(body: TeamInvite, member: OrgWriterDep, session: SessionDep) -> dict[str, Any]:
    membership, user = await team.invite_member(
        session, member.org_id, email=body.email, role=Role(body.role)
    )
    return {"data": member_out(membership, user), "message": "Team member invited successfully"}


@router.delete("/{member_id}")
async def remove(member_id: str, member: OrgWriterDep, session: SessionDep) -> dict[str, Any]:
    await team.remove_member(session, member.org_id, member_id=member_id, acting_user_id=member.user_id)
    return {"message": "Team member removed successfully"}
