"""/api/alert-channels: where notifications go (docs/alerts-channels.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from control_plane.alerts import channels
from control_plane.alerts.testing import send_test
from control_plane.api.alert_channel_schemas import (
    AlertChannelCreate,
    AlertChannelListResponse,
    AlertChannelResponse,
    AlertChannelUpdate,
    ChannelTestResponse,
    DeliveryAttemptPageResponse,
    attempt_out,
    channel_out,
    test_result_out,
)
from control_plane.api.deps import MemberDep, NowDep, OrgWriterDep, RuntimeDep, SessionDep
from control_plane.api.openapi import errors
from control_plane.api.responses import (
    JsonResponse,
    MessageResponse,
    data_response,
    message_response,
    page_response,
    pagination,
)

router = APIRouter(prefix="/api/alert-channels", tags=["alert channels"])

_NOT_FOUND = (404, channels.NOT_FOUND)


@router.get("", response_model=AlertChannelListResponse)
async def list_alert_channels(member: MemberDep, session: SessionDep) -> JsonResponse:
    """The organization's channels, oldest first, secrets masked."""
    views = await channels.list_channels(session, member.org_id)
    return data_response([channel_out(view) for view in views])


@router.post("", status_code=201, response_model=AlertChannelResponse)
async def create_alert_channel(
    body: AlertChannelCreate, member: OrgWriterDep, session: SessionDep, runtime: RuntimeDep, now: NowDep
) -> JsonResponse:
    """Creates a channel. A WEBHOOK created without a secret gets one, shown whole in this answer only."""
    view = await channels.create_channel(
        session,
        runtime.settings,
        member.org_id,
        name=body.name,
        channel_type=body.type,
        config=body.config,
        enabled=body.enabled,
        now=now,
    )
    return data_response(channel_out(view), status_code=201)


@router.get("/{channel_id}", response_model=AlertChannelResponse, responses=errors(_NOT_FOUND))
async def get_alert_channel(channel_id: str, member: MemberDep, session: SessionDep) -> JsonResponse:
    channel = await channels.get_channel(session, member.org_id, channel_id)
    return data_response(channel_out(channels.view_of(channel)))


@router.patch("/{channel_id}", response_model=AlertChannelResponse, responses=errors(_NOT_FOUND))
async def update_alert_channel(
    channel_id: str,
    body: AlertChannelUpdate,
    member: OrgWriterDep,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
) -> JsonResponse:
    """Changes the fields sent. `config` is replaced whole; its masked values sent back keep theirs."""
    view = await channels.update_channel(
        session, runtime.settings, member.org_id, channel_id, body.changes(), now=now
    )
    return data_response(channel_out(view))


@router.delete("/{channel_id}", response_model=MessageResponse, responses=errors(_NOT_FOUND))
async def delete_alert_channel(channel_id: str, member: OrgWriterDep, session: SessionDep) -> JsonResponse:
    """Deletes the channel, with its deliveries; monitors that named it no longer do."""
    await channels.delete_channel(session, member.org_id, channel_id)
    return message_response("Alert channel deleted successfully")


@router.post("/{channel_id}/test", response_model=ChannelTestResponse, responses=errors(_NOT_FOUND))
async def test_alert_channel(
    channel_id: str, member: OrgWriterDep, session: SessionDep, runtime: RuntimeDep, now: NowDep
) -> JsonResponse:
    """Sends a test notification now. A failed test is still a 200: the answer says why."""
    channel = await channels.get_channel(session, member.org_id, channel_id)
    result = await send_test(session, runtime.settings, channel, now=now)
    return data_response(test_result_out(result))


@router.get(
    "/{channel_id}/deliveries", response_model=DeliveryAttemptPageResponse, responses=errors(_NOT_FOUND)
)
async def list_alert_channel_deliveries(
    channel_id: str,
    member: MemberDep,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> JsonResponse:
    """The channel's delivery attempts (events' and tests'), newest first, a page at a time."""
    rows, total = await channels.list_attempts(session, member.org_id, channel_id, page=page, limit=limit)
    return page_response([attempt_out(row) for row in rows], pagination(page, limit, total))
