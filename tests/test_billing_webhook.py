"""POST /api/billing/webhook: RevenueCat's events change an organization's plan, once each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from control_plane.models import AuditEvent, BillingEvent, Monitor
from control_plane.services import billing, plans
from tests.billing_support import (
    WEBHOOK_SECRET,
    MonitorSpec,
    add_monitors,
    api_client,
    configured,
    webhook_event,
)

AUTH = {"Authorization": WEBHOOK_SECRET}


@pytest.fixture
async def billing_api(runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(configured(runtime)) as client:
        yield client


async def plan_of(client: httpx.AsyncClient, account) -> str:
    return (await client.get("/api/billing", headers=account.headers)).json()["plan"]


async def deliver(client: httpx.AsyncClient, body: object) -> httpx.Response:
    response = await client.post("/api/billing/webhook", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return response


async def billing_events(database) -> list[BillingEvent]:
    async with database.session() as session:
        return list(await session.scalars(select(BillingEvent).order_by(BillingEvent.received_at)))


async def audit_events(database, org_id: str) -> list[AuditEvent]:
    async with database.session() as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.created_at)
        )
        return list(rows)


async def test_initial_purchase_upgrades_only_the_named_organization(billing_api, world, database):
    body = webhook_event("INITIAL_PURCHASE", world.org_a, "traxo_business_monthly")
    response = await deliver(billing_api, body)
    assert "changed from FREE to BUSINESS" in response.json()["message"]
    usage = (await billing_api.get("/api/billing", headers=world.alice.headers)).json()
    assert usage == {"plan": "BUSINESS", "monitorCount": 0, "monitorLimit": 200}
    assert await plan_of(billing_api, world.bob) == "FREE"
    [recorded] = await billing_events(database)
    assert (recorded.id, recorded.org_id, recorded.type) == (
        body["event"]["id"],
        world.org_a,
        "INITIAL_PURCHASE",
    )
    assert recorded.payload == body
    [audit] = await audit_events(database, world.org_a)
    assert (audit.action, audit.actor) == ("plan.changed", "revenuecat")
    assert await audit_events(database, world.org_b) == []


async def test_an_event_for_org_b_changes_only_org_b(billing_api, world):
    await deliver(billing_api, webhook_event("INITIAL_PURCHASE", world.org_b, "traxo_pro_monthly"))
    assert await plan_of(billing_api, world.bob) == "PRO"
    assert await plan_of(billing_api, world.alice) == "FREE"


async def test_the_organization_is_found_through_an_alias(billing_api, world):
    body = webhook_event(
        "RENEWAL", "$RCAnonymousID:87c6049c", aliases=["$RCAnonymousID:87c6049c", world.org_a]
    )
    body["event"]["original_app_user_id"] = "$RCAnonymousID:87c6049c"
    await deliver(billing_api, body)
    assert await plan_of(billing_api, world.alice) == "PRO"


async def test_product_change_moves_to_the_new_product(billing_api, world):
    await deliver(billing_api, webhook_event("INITIAL_PURCHASE", world.org_a, "traxo_pro_monthly"))
    change = webhook_event(
        "PRODUCT_CHANGE", world.org_a, "traxo_pro_monthly", new_product_id="traxo_enterprise_monthly"
    )
    await deliver(billing_api, change)
    assert await plan_of(billing_api, world.alice) == "ENTERPRISE"


async def test_a_renewal_of_the_same_plan_writes_no_audit_event(billing_api, world, database):
    await deliver(billing_api, webhook_event("INITIAL_PURCHASE", world.org_a))
    response = await deliver(billing_api, webhook_event("RENEWAL", world.org_a))
    assert "already on plan PRO" in response.json()["message"]
    assert len(await audit_events(database, world.org_a)) == 1
    assert len(await billing_events(database)) == 2


async def test_cancellation_keeps_the_plan_until_expiration(billing_api, world, database):
    await deliver(billing_api, webhook_event("INITIAL_PURCHASE", world.org_a))
    await deliver(billing_api, webhook_event("CANCELLATION", world.org_a, cancel_reason="UNSUBSCRIBE"))
    assert await plan_of(billing_api, world.alice) == "PRO"
    assert [a.action for a in await audit_events(database, world.org_a)] == [
        "plan.changed",
        "billing.cancelled",
    ]
    await deliver(billing_api, webhook_event("UNCANCELLATION", world.org_a))
    assert await plan_of(billing_api, world.alice) == "PRO"
    await deliver(billing_api, webhook_event("EXPIRATION", world.org_a, expiration_reason="UNSUBSCRIBE"))
    assert await plan_of(billing_api, world.alice) == "FREE"


async def test_uncancellation_restores_the_products_plan(billing_api, world):
    await deliver(billing_api, webhook_event("UNCANCELLATION", world.org_a, "traxo_business_monthly"))
    assert await plan_of(billing_api, world.alice) == "BUSINESS"


async def test_expiration_of_a_product_that_is_not_the_current_plan_changes_nothing(billing_api, world):
    await deliver(billing_api, webhook_event("INITIAL_PURCHASE", world.org_a, "traxo_business_monthly"))
    response = await deliver(billing_api, webhook_event("EXPIRATION", world.org_a, "traxo_pro_monthly"))
    assert "not the current plan BUSINESS" in response.json()["message"]
    assert await plan_of(billing_api, world.alice) == "BUSINESS"


@pytest.mark.parametrize("event_type", ["TEST", "BILLING_ISSUE", "SUBSCRIPTION_PAUSED", "TRANSFER"])
async def test_other_event_types_are_acknowledged_and_recorded(billing_api, world, database, event_type):
    await deliver(billing_api, webhook_event(event_type, world.org_a, "traxo_enterprise_monthly"))
    assert await plan_of(billing_api, world.alice) == "FREE"
    [recorded] = await billing_events(database)
    assert recorded.type == event_type and recorded.org_id == world.org_a


async def test_an_unknown_app_user_is_recorded_without_effect(billing_api, world, database):
    response = await deliver(billing_api, webhook_event("INITIAL_PURCHASE", "org_doesnotexist"))
    assert "no organization" in response.json()["message"]
    [recorded] = await billing_events(database)
    assert recorded.org_id is None
    assert await plan_of(billing_api, world.alice) == "FREE"


async def test_an_unknown_product_is_recorded_and_logged(billing_api, world, database, caplog):
    response = await deliver(billing_api, webhook_event("INITIAL_PURCHASE", world.org_a, "gold_lifetime"))
    assert "product 'gold_lifetime' maps to no plan" in response.json()["message"]
    assert "unknown product 'gold_lifetime'" in caplog.text
    assert await plan_of(billing_api, world.alice) == "FREE"
    assert len(await billing_events(database)) == 1


async def test_a_redelivered_event_is_a_no_op(billing_api, world, database):
    purchase = webhook_event("INITIAL_PURCHASE", world.org_a, "traxo_business_monthly")
    await deliver(billing_api, purchase)
    await deliver(billing_api, webhook_event("EXPIRATION", world.org_a, "traxo_business_monthly"))
    assert await plan_of(billing_api, world.alice) == "FREE"
    response = await deliver(billing_api, purchase)  # RevenueCat retried the first one late
    assert "already received" in response.json()["message"]
    assert await plan_of(billing_api, world.alice) == "FREE"
    assert len(await billing_events(database)) == 2


async def test_concurrent_deliveries_of_one_event_apply_once(billing_api, world, database, monkeypatch):
    await deliver(billing_api, webhook_event("INITIAL_PURCHASE", world.org_a, "traxo_business_monthly"))
    monitor_ids = await add_monitors(database, world.org_a, *[MonitorSpec(interval=30)] * 7)
    inside: list[str] = []

    async def slow_change_plan(*args, **kwargs):
        # Holds the first delivery's transaction open, so the second one's insert must meet it.
        inside.append("in")
        await asyncio.sleep(0.2)
        return await plans.change_plan(*args, **kwargs)

    monkeypatch.setattr(billing, "change_plan", slow_change_plan)
    expiration = webhook_event("EXPIRATION", world.org_a, "traxo_business_monthly")
    responses = await asyncio.gather(*(deliver(billing_api, expiration) for _ in range(2)))
    assert inside == ["in"]
    messages = sorted(r.json()["message"] for r in responses)
    assert sum("already received" in message for message in messages) == 1, messages
    assert sum("changed from BUSINESS to FREE" in message for message in messages) == 1, messages
    downgrades = [a for a in await audit_events(database, world.org_a) if a.details["toPlan"] == "FREE"]
    assert len(downgrades) == 1
    assert downgrades[0].details["pausedOverLimit"] == [monitor_ids[6], monitor_ids[5]]
    async with database.session() as session:
        active = list(await session.scalars(select(Monitor.id).where(Monitor.is_active.is_(True))))
    assert sorted(active) == sorted(monitor_ids[:5])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "wrong"}, {"Authorization": f"Bearer {WEBHOOK_SECRET}"}, {"Authorization": ""}],
)
async def test_a_delivery_without_the_shared_secret_is_401(billing_api, world, database, headers):
    body = webhook_event("INITIAL_PURCHASE", world.org_a, "traxo_enterprise_monthly")
    response = await billing_api.post("/api/billing/webhook", json=body, headers=headers)
    assert response.status_code == 401
    assert "webhook authorization" in response.json()["error"]
    assert await plan_of(billing_api, world.alice) == "FREE"
    assert await billing_events(database) == []


async def test_an_api_key_does_not_authenticate_the_webhook(billing_api, world):
    body = webhook_event("INITIAL_PURCHASE", world.org_a, "traxo_enterprise_monthly")
    response = await billing_api.post("/api/billing/webhook", json=body, headers=world.alice.headers)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "Request body is not valid JSON"),
        (b"{not json", "Request body is not valid JSON"),
        (b"[]", "Request body must be a JSON object"),
        (b'{"api_version": "1.0"}', "event: field required"),
        (b'{"event": {"id": "e1", "type": "TEST"}}', "api_version: field required"),
        (b'{"api_version": "1.0", "event": "TEST"}', "event: must be a JSON object"),
        (b'{"api_version": "1.0", "event": {"type": "TEST"}}', "event.id: field required"),
        (b'{"api_version": "1.0", "event": {"id": "e1"}}', "event.type: field required"),
        (
            b'{"api_version": "1.0", "event": {"id": 7, "type": "TEST"}}',
            "event.id: Input should be a valid string",
        ),
        (
            b'{"api_version": "1.0", "event": {"id": "", "type": "TEST"}}',
            "event.id: String should have at least 1",
        ),
        (
            b'{"api_version": "1.0", "event": {"id": "e1", "type": "RENEWAL", "app_user_id": 5}}',
            "event.app_user_id: Input should be a valid string",
        ),
        (
            b'{"api_version": "1.0", "event": {"id": "e1", "type": "RENEWAL", "product_id": ["x"]}}',
            "event.product_id: Input should be a valid string",
        ),
    ],
)
async def test_a_malformed_body_is_400(billing_api, database, body, message):
    response = await billing_api.post(
        "/api/billing/webhook", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith(message), response.json()
    assert await billing_events(database) == []


async def test_without_revenuecat_the_webhook_says_billing_is_not_configured(api, world, database):
    body = webhook_event("INITIAL_PURCHASE", world.org_a, "traxo_enterprise_monthly")
    response = await api.post("/api/billing/webhook", json=body, headers=AUTH)
    assert response.status_code == 501
    assert response.json()["error"].startswith("Billing is not configured on this server")
    assert await billing_events(database) == []


def _with_nul(body: dict, path: tuple[str | int, ...]) -> dict:
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = f"{target[path[-1]]}\x00x"
    return body


@pytest.mark.parametrize(
    "path",
    [
        ("event", "id"),
        ("event", "type"),
        ("event", "app_user_id"),
        ("event", "original_app_user_id"),
        ("event", "aliases", 0),
        ("event", "product_id"),
        ("event", "transaction_id"),  # a field we do not read is still stored, in the payload
        ("event", "subscriber_attributes", "$email", "value"),
        ("api_version",),
    ],
)
async def test_a_nul_character_anywhere_in_the_body_is_400_naming_the_field(
    billing_api, world, database, path
):
    # PostgreSQL cannot store U+0000 (psycopg raised DataError: a 500) where SQLite kept it.
    body = _with_nul(webhook_event("INITIAL_PURCHASE", world.org_a), path)
    response = await billing_api.post("/api/billing/webhook", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    field = ".".join(str(part) for part in path)
    assert response.json() == {"error": f"{field}: must not contain NUL characters"}
    assert await billing_events(database) == []
    assert await plan_of(billing_api, world.alice) == "FREE"


async def test_a_nul_character_in_a_key_is_400(billing_api, world, database):
    body = webhook_event("INITIAL_PURCHASE", world.org_a)
    body["event"]["extra\x00key"] = 1
    response = await billing_api.post("/api/billing/webhook", json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"] == "event.'extra\\x00key': must not contain NUL characters"
    assert await billing_events(database) == []


async def test_wrong_webhook_secrets_are_rate_limited_per_client(billing_api, world, database):
    body = webhook_event("INITIAL_PURCHASE", world.org_a, "traxo_enterprise_monthly")
    for attempt in range(60):
        response = await billing_api.post(
            "/api/billing/webhook", json=body, headers={"Authorization": f"guess-{attempt}"}
        )
        assert response.status_code == 401, (attempt, response.text)
    limited = await billing_api.post("/api/billing/webhook", json=body, headers={"Authorization": "guess"})
    assert limited.status_code == 429
    assert limited.json()["error"].startswith("Rate limit exceeded")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Only failures spend the budget: the right secret still gets through from the same address.
    assert (await billing_api.post("/api/billing/webhook", json=body, headers=AUTH)).status_code == 200
    assert await plan_of(billing_api, world.alice) == "ENTERPRISE"
