"""Billing's request bodies (checkout's, and RevenueCat's webhook events, validated at the edge) and
its responses as the OpenAPI document states them."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    with_config,
)
from typing_extensions import TypedDict

from control_plane.api.errors import describe_validation_error
from control_plane.api.org_responses import PlanName
from control_plane.api.responses import CLOSED, Data
from control_plane.api.schemas import RequestModel, documented, examples, nul_character_path
from control_plane.core.errors import InvalidInput
from control_plane.integrations.revenuecat import Subscriber
from control_plane.services.billing import PAID_PLANS, BillingUsage, CheckoutOffer, RevenueCatEvent
from control_plane.settings import Plan

_PAID_NAMES = ", ".join(plan.value for plan in PAID_PLANS)


class CheckoutRequest(RequestModel):
    model_config = examples({"plan": "PRO"})

    # A plain string checked below, so that the error lists the plans; the document lists them too.
    plan: Annotated[str, documented(enum=[plan.value for plan in PAID_PLANS])]

    @field_validator("plan")
    @classmethod
    def _paid_plan(cls, value: str) -> str:
        if value not in {plan.value for plan in PAID_PLANS}:
            raise ValueError(f"must be one of {_PAID_NAMES}; got {value!r}")
        return value

    @property
    def paid_plan(self) -> Plan:
        return Plan(self.plan)


class _RevenueCatModel(BaseModel):
    # RevenueCat adds fields over time: ignore what we do not use, but type what we do.
    model_config = ConfigDict(extra="ignore", strict=True)


class WebhookEventIn(_RevenueCatModel):
    id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    app_user_id: str | None = None
    original_app_user_id: str | None = None
    aliases: list[str] | None = None
    product_id: str | None = None
    new_product_id: str | None = None
    entitlement_ids: list[str] | None = None


class WebhookIn(_RevenueCatModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "api_version": "1.0",
                    "event": {
                        "id": "CD489E0E-5D41-4B7E-9F6B-1D2F4C3A0001",
                        "type": "INITIAL_PURCHASE",
                        "app_user_id": "org_abc123",
                        "product_id": "traxo_pro_monthly",
                    },
                }
            ]
        }
    )

    api_version: str
    event: WebhookEventIn


def parse_webhook(raw: bytes) -> RevenueCatEvent:
    """A webhook body as a RevenueCatEvent, or InvalidInput (400) naming the field."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("Request body is not valid JSON") from exc
    if not isinstance(document, dict):
        raise InvalidInput("Request body must be a JSON object")
    # Anywhere in the body, ignored fields too: the whole payload is stored as received.
    where = nul_character_path(document)
    if where is not None:
        raise InvalidInput(f"{where}: must not contain NUL characters")
    try:
        body = WebhookIn.model_validate(document)
    except ValidationError as exc:
        raise InvalidInput("; ".join(_describe(dict(error)) for error in exc.errors()[:5])) from exc
    event = body.event
    candidates = [event.app_user_id, event.original_app_user_id, *(event.aliases or [])]
    return RevenueCatEvent(
        id=event.id,
        type=event.type,
        app_user_ids=tuple(dict.fromkeys(user_id for user_id in candidates if user_id)),
        product_id=event.product_id,
        new_product_id=event.new_product_id,
        payload=document,
    )


def _describe(error: dict[str, Any]) -> str:
    if error.get("type") in ("model_type", "dict_type"):
        return f"{'.'.join(str(part) for part in error['loc'])}: must be a JSON object"
    return describe_validation_error(error)


@with_config(CLOSED)
class BillingOut(TypedDict):
    """The reference's one answer not wrapped in `data`."""

    plan: PlanName
    monitorCount: int
    monitorLimit: Annotated[int | None, Field(description="null: unlimited")]


@with_config(CLOSED)
class CheckoutOut(TypedDict):
    productId: str
    appUserId: Annotated[str, Field(description="RevenueCat's app user: the organization's id")]
    apiKey: Annotated[str, Field(description="RevenueCat's public key for its web SDK")]


@with_config(CLOSED)
class PortalOut(TypedDict):
    subscriptions: dict[str, Any]
    entitlements: dict[str, Any]
    managementUrl: str | None


class CheckoutResponse(Data[CheckoutOut]):
    pass


class PortalResponse(Data[PortalOut]):
    pass


def billing_out(usage: BillingUsage) -> BillingOut:
    return {"plan": usage.plan, "monitorCount": usage.monitor_count, "monitorLimit": usage.monitor_limit}


def checkout_out(offer: CheckoutOffer) -> CheckoutOut:
    return {"productId": offer.product_id, "appUserId": offer.app_user_id, "apiKey": offer.api_key}


def portal_out(subscriber: Subscriber) -> PortalOut:
    return {
        "subscriptions": subscriber.subscriptions,
        "entitlements": subscriber.entitlements,
        "managementUrl": subscriber.management_url,
    }
