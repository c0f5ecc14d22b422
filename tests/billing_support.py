"""Billing test helpers: a real local server playing RevenueCat, webhook payloads, monitors rows."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiohttp import web

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from control_plane.core.ids import new_id
from control_plane.db import Database
from control_plane.models import Monitor

SECRET_KEY = "sk_test_traxo_secret"
PUBLIC_KEY = "rcb_test_traxo_public"
WEBHOOK_SECRET = "whsec-traxo-test-shared"

# What RevenueCat's GET /v1/subscribers/{id} answers, trimmed to the fields the portal uses and
# a few it ignores.
EXAMPLE_SUBSCRIBER: dict[str, Any] = {
    "entitlements": {"pro": {"expires_date": "2026-04-11T00:00:00Z"}},
    "first_seen": "2025-06-01T09:00:00Z",
    "management_url": "https://apps.apple.com/account/subscriptions",
    "non_subscriptions": {},
    "original_app_user_id": "set per test",
    "subscriptions": {"traxo_pro_monthly": {"expires_date": "2026-04-11T00:00:00Z"}},
}


class FakeRevenueCat:
    """RevenueCat's subscriber endpoint on 127.0.0.1:0, checking the Bearer secret.

    `mode` picks the answer: "ok", "error" (HTTP 500), "hang" (never answers until stopped),
    "invalid_json" (an HTML page), "no_subscriber" (JSON without the subscriber object).
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.subscribers: dict[str, dict[str, Any]] = {}
        self.requested: list[str] = []
        self.url = ""
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/subscribers/{app_user_id}", self._subscriber)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _subscriber(self, request: web.Request) -> web.StreamResponse:
        app_user_id = request.match_info["app_user_id"]
        self.requested.append(app_user_id)
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            return web.json_response({"code": 7225, "message": "Invalid API Key."}, status=401)
        if self.mode == "error":
            return web.json_response({"code": 7110, "message": "Internal server error."}, status=500)
        if self.mode == "hang":
            await self._release.wait()
        if self.mode == "invalid_json":
            return web.Response(text="<html><body>Bad gateway</body></html>", content_type="text/html")
        if self.mode == "no_subscriber":
            return web.json_response({"request_date": "2025-06-01T09:00:00Z"})
        subscriber = self.subscribers.get(
            app_user_id,
            {"entitlements": {}, "subscriptions": {}, "management_url": None, "non_subscriptions": {}},
        )
        return web.json_response(
            {
                "request_date": "2025-06-01T09:00:00Z",
                "request_date_ms": 1748768400000,
                "subscriber": subscriber,
            }
        )


def configured(runtime: Runtime, **overrides: Any) -> Runtime:
    """The suite's runtime (same database, caches, rate limits) with RevenueCat settings."""
    values: dict[str, Any] = {
        "revenuecat_secret_key": SECRET_KEY,
        "revenuecat_public_key": PUBLIC_KEY,
        "revenuecat_webhook_secret": WEBHOOK_SECRET,
        "revenuecat_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return dataclasses.replace(runtime, settings=runtime.settings.model_copy(update=values))


@asynccontextmanager
async def api_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.settings, runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as client:
        yield client


def webhook_event(event_type: str, app_user_id: str, product_id: str = "traxo_pro_monthly", **extra: Any):
    """A webhook body shaped like RevenueCat's (api_version 1.0), with a fresh event id."""
    now_ms = 1_748_768_400_000
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()).upper(),
        "type": event_type,
        "app_id": "app1a2b3c4d5e",
        "app_user_id": app_user_id,
        "original_app_user_id": app_user_id,
        "aliases": [app_user_id],
        "product_id": product_id,
        "entitlement_ids": ["pro"],
        "entitlement_id": None,
        "period_type": "NORMAL",
        "purchased_at_ms": now_ms,
        "expiration_at_ms": now_ms + 30 * 86_400_000,
        "event_timestamp_ms": now_ms + 1000,
        "environment": "PRODUCTION",
        "store": "STRIPE",
        "currency": "USD",
        "price": 19.0,
        "price_in_purchased_currency": 19.0,
        "country_code": "US",
        "transaction_id": "sub_1PqXyZ",
        "original_transaction_id": "sub_1PqXyZ",
        "is_family_share": False,
        "presented_offering_id": "default",
        "subscriber_attributes": {"$email": {"value": "alice@a.example", "updated_at_ms": now_ms}},
        "takehome_percentage": 0.97,
        "tax_percentage": 0.0,
        "commission_percentage": 0.03,
        "offer_code": None,
        "renewal_number": 1,
    }
    event.update(extra)
    return {"api_version": "1.0", "event": event}


@dataclasses.dataclass(frozen=True)
class MonitorSpec:
    interval: int = 300
    type: str = "HTTP"
    active: bool = True


async def add_monitors(db: Database, org_id: str, *specs: MonitorSpec) -> list[str]:
    """Monitors rows created a minute apart, oldest first (the monitors API is not needed here)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    ids = []
    async with db.session() as session:
        for index, spec in enumerate(specs):
            created = start + timedelta(minutes=index)
            monitor = Monitor(
                id=new_id("mon"),
                org_id=org_id,
                name=f"monitor {index}",
                type=spec.type,
                url="https://example.com/",
                interval=spec.interval,
                timeout=30,
                regions=["us-east-1"],
                config={},
                is_active=spec.active,
                created_at=created,
                updated_at=created,
            )
            session.add(monitor)
            ids.append(monitor.id)
        await session.commit()
    return ids
