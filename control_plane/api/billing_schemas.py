"""Billing's request bodies: checkout's, and RevenueCat's webhook events, validated at the edge."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator

from control_plane.api.errors import describe_validation_error
from control_plane.api.schemas import RequestModel, nul_character_path
from control_plane.revenuecat import Subscriber
from control_plane.services.billing import PAID_PLANS, BillingUsage, CheckoutOffer, RevenueCatEvent
from control_plane.services.errors import InvalidInput
from control_plane.settings import Plan

_PAID_NAMES = ", ".join(plan.value for plan in PAID_PLANS)


class CheckoutRequest(RequestModel):
    plan: str

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


def billing_out(usage: BillingUsage) -> dict[str, Any]:
    # The reference's one unwrapped answer.
    return {"plan": usage.plan, "monitorCount": usage.monitor_count, "monitorLimit": usage.monitor_limit}


def checkout_out(offer: CheckoutOffer) -> dict[str, Any]:
    return {"productId": offer.product_id, "appUserId": offer.app_user_id, "apiKey": offer.api_key}


def portal_out(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "subscriptions": subscriber.subscriptions,
        "entitlements": subscriber.entitlements,
        "managementUrl": subscriber.management_url,
    }
