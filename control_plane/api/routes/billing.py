"""/api/billing: plan and usage, RevenueCat checkout and portal, and RevenueCat's webhook."""

from __future__ import annotations

from fastapi import APIRouter, Request

from control_plane.api.billing_schemas import (
    BillingOut,
    CheckoutRequest,
    CheckoutResponse,
    PortalResponse,
    WebhookIn,
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
from control_plane.api.openapi import WEBHOOK_SCHEME, errors, json_body
from control_plane.api.responses import JsonResponse, MessageResponse, data_response, message_response
from control_plane.services import billing

router = APIRouter(prefix="/api/billing", tags=["billing"])

_NOT_CONFIGURED = "Billing is not configured on this server (plans are the operator's: `traxo orgs set-plan`)"


@router.get("", response_model=BillingOut)
async def get_billing(member: MemberDep, session: SessionDep) -> JsonResponse:
    return JsonResponse(billing_out(await billing.usage(session, member.org_id)))


@router.post("/checkout", response_model=CheckoutResponse, responses=errors((501, _NOT_CONFIGURED)))
async def billing_checkout(body: CheckoutRequest, member: OrgWriterDep, runtime: RuntimeDep) -> JsonResponse:
    """What RevenueCat's web SDK needs to sell the plan to the organization."""
    offer = billing.checkout(runtime.settings, member.org_id, body.paid_plan)
    return data_response(checkout_out(offer))


@router.post(
    "/portal",
    response_model=PortalResponse,
    responses=errors(
        (501, _NOT_CONFIGURED), (502, "RevenueCat failed, or answered what it does not say it would")
    ),
)
async def billing_portal(member: OrgWriterDep, runtime: RuntimeDep) -> JsonResponse:
    """The organization's subscriptions and entitlements, as RevenueCat knows them."""
    subscriber = await billing.portal(runtime.settings, member.org_id)
    return data_response(portal_out(subscriber))


# Public: RevenueCat authenticates with the shared secret, not an API key. The body is read only
# after that check, so strangers learn nothing from validation errors; wrong secrets spend the
# address's failed-authentication budget, as wrong API keys do, so guessing one is slow too.
@router.post(
    "/webhook",
    response_model=MessageResponse,
    responses=errors(
        (400, "The body is not a RevenueCat event"),
        (401, "Missing or wrong webhook secret"),
        413,
        (429, "This address spent its budget for failed authentications"),
        (501, "No webhook secret is configured on this server"),
    ),
    openapi_extra={
        "security": [{WEBHOOK_SCHEME: []}],
        **json_body(WebhookIn, "A RevenueCat webhook event; fields not listed here are kept, not read"),
    },
)
async def revenuecat_webhook(request: Request, runtime: RuntimeDep, session: SessionDep) -> JsonResponse:
    """RevenueCat's events: plan changes, applied once per event id (a redelivery changes nothing)."""
    if not billing.webhook_authorized(runtime.settings, request.headers.get("authorization")):
        await spend_failed_authentication(request, runtime)
        raise ApiError(
            401, "Invalid webhook authorization: send RevenueCat's configured Authorization header"
        )
    event = parse_webhook(await request.body())
    outcome = await billing.handle_webhook_event(session, runtime.settings, event, now=runtime.clock())
    return message_response(outcome.message)
