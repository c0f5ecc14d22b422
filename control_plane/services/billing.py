"""Billing: plan and usage, RevenueCat checkout and portal details, and RevenueCat's webhook events.

RevenueCat's app user id is the organization id: the plan belongs to the organization, not to
whoever paid. Without RevenueCat settings the server runs with operator-managed plans and the
RevenueCat-backed calls raise NotConfigured.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.errors import InvalidInput, NotConfigured, NotFound
from control_plane.core.ids import new_id
from control_plane.domain.plans import limits_for
from control_plane.integrations.revenuecat import RevenueCatClient, Subscriber
from control_plane.models import AuditEvent, BillingEvent, Organization
from control_plane.services.monitors import count_monitors
from control_plane.services.plans import change_plan
from control_plane.settings import Plan, Settings

log = logging.getLogger(__name__)

ACTOR = "revenuecat"
PAID_PLANS = (Plan.PRO, Plan.BUSINESS, Plan.ENTERPRISE)
# Events that mean "the subscriber now has this product".
_PURCHASE_TYPES = frozenset({"INITIAL_PURCHASE", "RENEWAL", "UNCANCELLATION"})


def _not_configured(setting: str) -> NotConfigured:
    return NotConfigured(
        f"Billing is not configured on this server (RevenueCat: TRAXO_{setting.upper()} is not set); "
        "the operator manages plans with `traxo orgs set-plan`"
    )


@dataclass(frozen=True, slots=True)
class BillingUsage:
    plan: str
    monitor_count: int
    monitor_limit: int | None  # None: unlimited


async def usage(session: AsyncSession, org_id: str) -> BillingUsage:
    org = await session.get(Organization, org_id)
    if org is None:
        raise NotFound("Organization not found")
    return BillingUsage(org.plan, await count_monitors(session, org_id), limits_for(org.plan).monitors)


def product_ids(settings: Settings) -> dict[Plan, str]:
    return {
        Plan.PRO: settings.revenuecat_product_pro,
        Plan.BUSINESS: settings.revenuecat_product_business,
        Plan.ENTERPRISE: settings.revenuecat_product_enterprise,
    }


def plan_for_product(settings: Settings, product_id: str | None) -> Plan | None:
    return next((plan for plan, product in product_ids(settings).items() if product == product_id), None)


@dataclass(frozen=True, slots=True)
class CheckoutOffer:
    product_id: str
    app_user_id: str
    api_key: str


def checkout(settings: Settings, org_id: str, plan: Plan) -> CheckoutOffer:
    """What RevenueCat's web SDK needs to sell `plan` to the organization."""
    if not settings.revenuecat_public_key:
        raise _not_configured("revenuecat_public_key")
    if plan not in PAID_PLANS:
        raise InvalidInput(f"plan: must be one of PRO, BUSINESS, ENTERPRISE; {plan.value} needs no checkout")
    return CheckoutOffer(product_ids(settings)[plan], org_id, settings.revenuecat_public_key)


async def portal(settings: Settings, org_id: str) -> Subscriber:
    """The organization's subscriptions and entitlements as RevenueCat knows them (502 if it fails)."""
    if not settings.revenuecat_secret_key:
        raise _not_configured("revenuecat_secret_key")
    client = RevenueCatClient(
        settings.revenuecat_api_url, settings.revenuecat_secret_key, settings.revenuecat_timeout_seconds
    )
    return await client.get_subscriber(org_id)


def webhook_authorized(settings: Settings, authorization: str | None) -> bool:
    """Whether the header is the configured secret (RevenueCat sends it verbatim); NotConfigured if none."""
    secret = settings.revenuecat_webhook_secret
    if not secret:
        raise _not_configured("revenuecat_webhook_secret")
    return authorization is not None and hmac.compare_digest(authorization.encode(), secret.encode())


@dataclass(frozen=True, slots=True)
class RevenueCatEvent:
    """A webhook event as validated at the edge; `payload` is the whole body, kept as received."""

    id: str
    type: str
    app_user_ids: tuple[str, ...]  # app_user_id first, then original_app_user_id and aliases
    product_id: str | None
    new_product_id: str | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    applied: bool
    message: str


async def handle_webhook_event(
    session: AsyncSession, settings: Settings, event: RevenueCatEvent, *, now: datetime
) -> WebhookOutcome:
    """Record the event and apply it, once: the event id is the billing_events primary key.

    The insert comes first and shares the plan change's transaction, so a redelivery, even one
    running concurrently, fails on the key and changes nothing. Events that cannot apply (unknown
    organization or product, types we do not act on) are still answered 2xx, or RevenueCat would
    retry them for days; they are recorded and logged.
    """
    record = BillingEvent(id=event.id, org_id=None, type=event.type, payload=event.payload, received_at=now)
    session.add(record)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        return WebhookOutcome(False, f"Event {event.id} was already received; nothing to do")
    org = await _find_organization(session, event.app_user_ids)
    if org is None:
        log.warning(
            "RevenueCat event %s (%s) names no organization: %s", event.id, event.type, event.app_user_ids
        )
        await session.commit()
        return WebhookOutcome(False, f"Event {event.id} recorded: no organization matches its app_user_id")
    record.org_id = org.id
    outcome = await _apply(session, settings, org, event, now)
    await session.commit()
    log.info("RevenueCat event %s: %s", event.id, outcome.message)
    return outcome


async def _find_organization(session: AsyncSession, app_user_ids: tuple[str, ...]) -> Organization | None:
    if not app_user_ids:
        return None
    found = {
        org.id: org
        for org in await session.scalars(select(Organization).where(Organization.id.in_(app_user_ids)))
    }
    return next((found[user_id] for user_id in app_user_ids if user_id in found), None)


async def _apply(
    session: AsyncSession, settings: Settings, org: Organization, event: RevenueCatEvent, now: datetime
) -> WebhookOutcome:
    if event.type in _PURCHASE_TYPES or event.type == "PRODUCT_CHANGE":
        product_id = event.new_product_id if event.type == "PRODUCT_CHANGE" else event.product_id
        plan = plan_for_product(settings, product_id)
        if plan is None:
            return _unknown_product(event, product_id)
        change = await change_plan(session, org, plan, actor=ACTOR, now=now)
        return WebhookOutcome(change.plan_changed, f"Event {event.id} ({event.type}): {change.describe()}")
    if event.type == "EXPIRATION":
        plan = plan_for_product(settings, event.product_id)
        if plan is None:
            return _unknown_product(event, event.product_id)
        if plan.value != org.plan:
            # e.g. the old product of a plan change expiring after the new one took over.
            return WebhookOutcome(
                False,
                f"Event {event.id} (EXPIRATION): {event.product_id} is not the current plan "
                f"{org.plan} of organization {org.slug}; nothing changed",
            )
        change = await change_plan(session, org, Plan.FREE, actor=ACTOR, now=now)
        return WebhookOutcome(change.plan_changed, f"Event {event.id} (EXPIRATION): {change.describe()}")
    if event.type == "CANCELLATION":
        message = (
            f"Subscription {event.product_id} was cancelled; organization {org.slug} keeps plan "
            f"{org.plan} until it expires."
        )
        session.add(
            AuditEvent(
                id=new_id("evt"),
                org_id=org.id,
                action="billing.cancelled",
                actor=ACTOR,
                message=message,
                details={"eventId": event.id, "productId": event.product_id, "plan": org.plan},
                created_at=now,
            )
        )
        return WebhookOutcome(False, f"Event {event.id} (CANCELLATION) recorded: {message}")
    return WebhookOutcome(False, f"Event {event.id} ({event.type}) recorded; it does not change plans")


def _unknown_product(event: RevenueCatEvent, product_id: str | None) -> WebhookOutcome:
    log.warning("RevenueCat event %s (%s) names unknown product %r", event.id, event.type, product_id)
    return WebhookOutcome(
        False, f"Event {event.id} ({event.type}) recorded: product {product_id!r} maps to no plan"
    )
