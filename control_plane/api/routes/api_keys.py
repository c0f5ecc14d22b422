"""/api/api-keys: the caller's own API keys."""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.api.deps import NowDep, PrincipalDep, SessionDep, WriterDep
from control_plane.api.openapi import errors
from control_plane.api.org_responses import ApiKeyListResponse, ApiKeyResponse, api_key_out
from control_plane.api.responses import JsonResponse, MessageResponse, data_response, message_response
from control_plane.api.schemas import ApiKeyCreate
from control_plane.services import accounts

router = APIRouter(prefix="/api/api-keys", tags=["api-keys"])


@router.get("", response_model=ApiKeyListResponse)
async def list_api_keys(principal: PrincipalDep, session: SessionDep) -> JsonResponse:
    keys = await accounts.list_keys(session, principal.user_id)
    return data_response([api_key_out(key) for key in keys])


@router.post("", status_code=201, response_model=ApiKeyResponse)
async def create_api_key(
    body: ApiKeyCreate, principal: WriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    """The whole key is in this answer only: store it now."""
    key, raw_key = await accounts.create_key(session, principal.user_id, body.name, now=now)
    return data_response(api_key_out(key, raw_key=raw_key), status_code=201)


@router.delete("/{key_id}", response_model=MessageResponse, responses=errors((404, "API key not found")))
async def revoke_api_key(key_id: str, principal: WriterDep, session: SessionDep, now: NowDep) -> JsonResponse:
    await accounts.revoke_key(session, principal.user_id, key_id, now=now)
    return message_response("API key revoked successfully")
