"""/api/billing: plan and usage, RevenueCat checkout and portal, and RevenueCat's webhook."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from control_plane.api.billing_schemas import (
    CheckoutRequest,
    billing_out,
    checkout_out,
    parse_webhook,
    portal_out,
)
from control_plane.api.deps import (
    MemberDep,
    OrgWriterDep,
    RuntimeDep,
    SessionDep,
    spend_failed_authentication,
)
from control_plane.api.errors import ApiError
from control_plane.services import billing

router = APIRouter(prefix="/api/billing", tags=["billing"])


@router.get("")
async def get_billing(member: MemberDep, session: SessionDep) -> dict[str, Any]:
    return billing_out(await billing.usage(session, member.org_id))


@router.post("/checkout")
async def checkout(body: CheckoutRequest, member: OrgWriterDep, runtime: RuntimeDep) -> dict[str, Any]:
    offer = billing.checkout(runtime.settings, member.org_id, body.paid_plan)
    return {"data": checkout_out(offer)}


@router.post("/portal")
async def portal(member: OrgWriterDep, runtime: RuntimeDep) -> dict[str, Any]:
    subscriber = await billing.portal(runtime.settings, member.org_id)
    return {"data": portal_out(subscriber)}


# Public: RevenueCat authenticates with the shared secret, not an API key. The body is read only
# after that check, so strangers learn nothing from validation errors; wrong secrets spend the
# address's failed-authentication budget, as wrong API keys do, so guessing one is slow too.
@router.post("/webhook")
async def webhook(request: Request, runtime: RuntimeDep, session: SessionDep) -> dict[str, Any]:
    if not billing.webhook_authorized(runtime.settings, request.headers.get("authorization")):
        await spend_failed_authentication(request, runtime)
        raise ApiError(
            401, "Invalid webhook authorization: send RevenueCat's configured Authorization header"
        )
    event = parse_webhook(await request.body())
    outcome = await billing.handle_webhook_event(session, runtime.settings, event)
    return {"message": outcome.message}
