"""/api/billing, /checkout and /portal: plan and usage, RevenueCat product info and subscriber details."""

from __future__ import annotations

from collections.abc import AsyncIterator
from copy import deepcopy

import httpx
import pytest

from control_plane.settings import Plan
from tests.billing_support import (
    EXAMPLE_SUBSCRIBER,
    PUBLIC_KEY,
    FakeRevenueCat,
    MonitorSpec,
    add_monitors,
    api_client,
    configured,
)
from tests.conftest import make_org
from tests.processes import free_port
from tests.spec import assert_shape, example


@pytest.fixture
async def revenuecat() -> AsyncIterator[FakeRevenueCat]:
    server = FakeRevenueCat()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def billing_api(runtime, revenuecat) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(configured(runtime, revenuecat_api_url=revenuecat.url)) as client:
        yield client


# GET /api/billing


async def test_get_reports_plan_and_usage_without_revenuecat(api, world, database):
    await add_monitors(database, world.org_a, MonitorSpec(), MonitorSpec(), MonitorSpec(active=False))
    await add_monitors(database, world.org_b, MonitorSpec())
    response = await api.get("/api/billing", headers=world.vera.headers)  # any member may read
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, example("GET", "/api/billing"))
    assert body == {"plan": "FREE", "monitorCount": 3, "monitorLimit": 5}
    other = (await api.get("/api/billing", headers=world.bob.headers)).json()
    assert other == {"plan": "FREE", "monitorCount": 1, "monitorLimit": 5}


async def test_get_says_null_for_an_unlimited_plan(api, world, database):
    await make_org(database, world.nora, "nora-inc", Plan.ENTERPRISE)
    body = (await api.get("/api/billing", headers=world.nora.headers)).json()
    assert body == {"plan": "ENTERPRISE", "monitorCount": 0, "monitorLimit": None}


async def test_get_without_an_organization_is_404(api, world):
    response = await api.get("/api/billing", headers=world.nora.headers)
    assert response.status_code == 404
    assert "Organization" in response.json()["error"]


# POST /api/billing/checkout


@pytest.mark.parametrize(
    ("plan", "product"),
    [
        ("PRO", "traxo_pro_monthly"),
        ("BUSINESS", "traxo_business_monthly"),
        ("ENTERPRISE", "traxo_enterprise_monthly"),
    ],
)
async def test_checkout_names_the_product_and_the_organization(billing_api, world, plan, product):
    response = await billing_api.post(
        "/api/billing/checkout", json={"plan": plan}, headers=world.adam.headers
    )
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, example("POST", "/api/billing/checkout"))
    # The plan belongs to the organization, so RevenueCat's app user is the organization.
    assert body == {"data": {"productId": product, "appUserId": world.org_a, "apiKey": PUBLIC_KEY}}
    other = await billing_api.post("/api/billing/checkout", json={"plan": plan}, headers=world.bob.headers)
    assert other.json()["data"]["appUserId"] == world.org_b


async def test_checkout_uses_the_product_ids_from_settings(runtime, world, revenuecat):
    custom = configured(runtime, revenuecat_product_business="acme_business_yearly")
    async with api_client(custom) as client:
        response = await client.post(
            "/api/billing/checkout", json={"plan": "BUSINESS"}, headers=world.alice.headers
        )
    assert response.json()["data"]["productId"] == "acme_business_yearly"


async def test_checkout_is_403_for_a_viewer_and_404_without_an_organization(billing_api, world):
    response = await billing_api.post(
        "/api/billing/checkout", json={"plan": "PRO"}, headers=world.vera.headers
    )
    assert response.status_code == 403 and "VIEWER" in response.json()["error"]
    response = await billing_api.post(
        "/api/billing/checkout", json={"plan": "PRO"}, headers=world.nora.headers
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "plan: field required"),
        ({"plan": None}, "plan: must not be null"),
        ({"plan": "pro"}, "plan: must be one of PRO, BUSINESS, ENTERPRISE; got 'pro'"),
        ({"plan": "FREE"}, "plan: must be one of PRO, BUSINESS, ENTERPRISE; got 'FREE'"),
        ({"plan": "GOLD"}, "plan: must be one of PRO, BUSINESS, ENTERPRISE; got 'GOLD'"),
        ({"plan": 2}, "plan: Input should be a valid string"),
        ({"plan": ["PRO"]}, "plan: Input should be a valid string"),
        ({"plan": "PRO", "coupon": "x"}, "coupon: unknown field"),
        (["PRO"], "Request body must be a JSON object"),
    ],
)
async def test_checkout_rejects_a_bad_plan(billing_api, world, body, message):
    response = await billing_api.post("/api/billing/checkout", json=body, headers=world.alice.headers)
    assert response.status_code == 400
    assert response.json() == {"error": message}


async def test_checkout_rejects_a_body_that_is_not_json(billing_api, world):
    response = await billing_api.post(
        "/api/billing/checkout",
        content=b"plan=PRO",
        headers={**world.alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and "JSON" in response.json()["error"]


# POST /api/billing/portal


async def test_portal_returns_the_organizations_subscriptions(billing_api, world, revenuecat):
    revenuecat.subscribers[world.org_a] = deepcopy(EXAMPLE_SUBSCRIBER) | {"original_app_user_id": world.org_a}
    response = await billing_api.post("/api/billing/portal", headers=world.alice.headers)
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, example("POST", "/api/billing/portal"))
    assert body == {
        "data": {
            "subscriptions": {"traxo_pro_monthly": {"expires_date": "2026-04-11T00:00:00Z"}},
            "entitlements": {"pro": {"expires_date": "2026-04-11T00:00:00Z"}},
            "managementUrl": "https://apps.apple.com/account/subscriptions",
        }
    }
    # Org B is asked for as itself and sees nothing of org A's subscription.
    other = (await billing_api.post("/api/billing/portal", headers=world.bob.headers)).json()
    assert other == {"data": {"subscriptions": {}, "entitlements": {}, "managementUrl": None}}
    assert revenuecat.requested == [world.org_a, world.org_b]


async def test_portal_is_403_for_a_viewer(billing_api, world, revenuecat):
    response = await billing_api.post("/api/billing/portal", headers=world.vera.headers)
    assert response.status_code == 403
    assert revenuecat.requested == []


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("error", "RevenueCat answered HTTP 500: Internal server error."),
        ("invalid_json", "RevenueCat answered with a body that is not valid JSON"),
        ("no_subscriber", "RevenueCat answered without a 'subscriber' object"),
        ("hang", "RevenueCat did not answer within 0.3 s"),
    ],
)
async def test_portal_is_502_when_revenuecat_fails(runtime, world, revenuecat, mode, message):
    revenuecat.mode = mode
    broken = configured(runtime, revenuecat_api_url=revenuecat.url, revenuecat_timeout_seconds=0.3)
    async with api_client(broken) as client:
        response = await client.post("/api/billing/portal", headers=world.alice.headers)
    assert response.status_code == 502
    assert response.json() == {"error": message}


async def test_portal_is_502_when_revenuecat_rejects_our_key(runtime, world, revenuecat):
    wrong_key = configured(runtime, revenuecat_api_url=revenuecat.url, revenuecat_secret_key="sk_wrong")
    async with api_client(wrong_key) as client:
        response = await client.post("/api/billing/portal", headers=world.alice.headers)
    assert response.status_code == 502
    assert response.json() == {"error": "RevenueCat answered HTTP 401: Invalid API Key."}


async def test_portal_is_502_when_revenuecat_is_down(runtime, world):
    down = configured(runtime, revenuecat_api_url=f"http://127.0.0.1:{free_port()}")
    async with api_client(down) as client:
        response = await client.post("/api/billing/portal", headers=world.alice.headers)
    assert response.status_code == 502
    assert response.json()["error"].startswith("RevenueCat is unreachable")


# Without RevenueCat (self-hosting)


async def test_checkout_and_portal_say_billing_is_not_configured(api, world):
    for path, body in (("/api/billing/checkout", {"plan": "PRO"}), ("/api/billing/portal", None)):
        response = await api.post(path, json=body, headers=world.alice.headers)
        assert response.status_code == 501, path
        error = response.json()["error"]
        assert error.startswith("Billing is not configured on this server"), error
        assert "traxo orgs set-plan" in error
    # Roles are still checked first: a VIEWER learns nothing about the server's setup.
    response = await api.post("/api/billing/portal", headers=world.vera.headers)
    assert response.status_code == 403


async def test_each_missing_key_is_named(runtime, world, revenuecat):
    partial = configured(runtime, revenuecat_api_url=revenuecat.url, revenuecat_secret_key=None)
    async with api_client(partial) as client:
        checkout = await client.post(
            "/api/billing/checkout", json={"plan": "PRO"}, headers=world.alice.headers
        )
        portal = await client.post("/api/billing/portal", headers=world.alice.headers)
    assert checkout.status_code == 200
    assert portal.status_code == 501 and "TRAXO_REVENUECAT_SECRET_KEY" in portal.json()["error"]
