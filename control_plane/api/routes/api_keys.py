"""/api/api-keys: the caller's own API keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from control_plane.api.deps import PrincipalDep, SessionDep, WriterDep
from control_plane.api.schemas import ApiKeyCreate, api_key_out
from control_plane.services import accounts

router = APIRouter(prefix="/api/api-keys", tags=["api-keys"])


@router.get("")
async def list_api_keys(principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    keys = await accounts.list_keys(session, principal.user_id)
    return {"data": [api_key_out(key) for key in keys]}


@router.post("", status_code=201)
async def create_api_key(body: ApiKeyCreate, principal: WriterDep, session: SessionDep) -> dict[str, Any]:
    key, raw_key = await accounts.create_key(session, principal.user_id, body.name)
    return {"data": api_key_out(key, raw_key=raw_key)}


@router.delete("/{key_id}")
async def revoke_api_key(key_id: str, principal: WriterDep, session: SessionDep) -> dict[str, Any]:
    await accounts.revoke_key(session, principal.user_id, key_id)
    return {"message": "API key revoked successfully"}
