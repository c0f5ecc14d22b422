"""The tenancy tests' two organizations (test_tenancy_matrix.py, test_tenancy_public.py): their
owners making resources of every kind through the API, and identifiers that name nothing, to compare
another organization's answers with."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select, update

from control_plane.api.deps import Runtime
from control_plane.core.ids import new_id
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import Organization
from control_plane.models.ai import AiInsight
from control_plane.models.status_pages import PageSubscriber
from control_plane.status_pages import public, subscribers
from tests.billing_support import FakeRevenueCat, api_client, configured
from tests.conftest import Account, World, make_account
from tests.factories import record, result
from tests.incident_factories import insert_incident

Ids = dict[str, str]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
# A WEBHOOK channel's test is sent here: nothing listens on the discard port, so it fails at once.
HOOK_URL = "http://127.0.0.1:9/traxo"


def new_slug() -> str:
    return f"page-{secrets.token_hex(4)}"


def absent(value: str) -> str:
    """An identifier of the same shape that names nothing."""
    prefix, underscore, _ = value.partition("_")
    if underscore:
        return new_id(prefix)
    if "@" in value:
        return f"nobody-{secrets.token_hex(4)}@{value.partition('@')[2]}"
    return new_slug()


def replaced(text: str, substitutes: dict[str, str]) -> str:
    for identifier in sorted(substitutes, key=len, reverse=True):
        text = text.replace(identifier, substitutes[identifier])
    return text


async def same_as_absent(
    api: httpx.AsyncClient, method: str, path: str, substitutes: dict[str, str], **request: Any
) -> httpx.Response:
    """The answer for `path`, asserted to be the answer for `path` with each of `substitutes`'
    identifiers replaced by one that names nothing (the identifier itself replaced in the text)."""
    response = await api.request(method, path, **request)
    if request.get("json") is not None:
        request["json"] = json.loads(replaced(json.dumps(request["json"]), substitutes))
    unknown = await api.request(method, replaced(path, substitutes), **request)
    assert 400 <= response.status_code < 500, f"{method} {path}: {response.status_code} {response.text}"
    assert (response.status_code, replaced(response.text, substitutes)) == (unknown.status_code, unknown.text)
    return response


@dataclass
class Tenant:
    """An organization's owner making resources through the API (rows where the API cannot make
    them: the engine's incidents, the worker's insights, an agent's screenshot), and the ones it
    made for the whole test, by kind."""

    api: httpx.AsyncClient
    db: Database
    owner: Account
    domain: str
    standing: dict[str, Ids] = field(default_factory=dict)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.api.request(method, path, json=body, headers=self.owner.headers)
        assert response.status_code in (200, 201), f"{method} {path}: {response.status_code} {response.text}"
        return response.json().get("data")  # a delete answers {"message": ...}

    async def make(self, kind: str) -> Ids:
        maker: Callable[[], Any] = getattr(self, f"make_{kind}")
        made: Ids = await maker()
        return made

    async def stand(self, kinds: list[str]) -> None:
        assert self.owner.org_id and self.owner.member_id
        self.standing["org"] = {"org_id": self.owner.org_id, "owner_member_id": self.owner.member_id}
        for kind in kinds:
            self.standing[kind] = await self.make(kind)

    @property
    def base(self) -> Ids:
        """What bodies refer to: the standing monitor and channel."""
        return {**self.standing["monitor"], **self.standing["channel"]}

    def identifiers(self) -> set[str]:
        """Everything that names this organization or something of it."""
        found = {value for ids in self.standing.values() for value in ids.values()}
        return found | {self.owner.email, self.domain}

    async def make_monitor(self, **fields: Any) -> Ids:
        body = {"name": "API", "type": "HTTP", "url": "https://example.com/health", "interval": 300, **fields}
        return {"monitor_id": (await self.call("POST", "/api/monitors", body))["id"]}

    async def make_browser_check(self) -> Ids:
        monitor_id = (await self.make_monitor())["monitor_id"]
        check = result(monitor_id, utcnow(), status="DOWN", screenshot_png=PNG)
        await record(self.db, [check])
        return {"monitor_id": monitor_id, "check_id": check.id}

    async def make_llm_monitor(self) -> Ids:
        monitor_id = (await self.call("POST", "/api/monitors", {"name": "Chat", "type": "LLM"}))["id"]
        event = {
            "provider": "openai",
            "model": "gpt-4o",
            "promptTokens": 150,
            "completionTokens": 80,
            "latencyMs": 900,
        }
        response = await self.api.post(f"/api/ai/ingest/{monitor_id}", json=event)
        assert response.status_code == 200, response.text
        return {"monitor_id": monitor_id, "event_id": response.json()["data"]["id"]}

    async def make_insight(self) -> Ids:
        ids = await self.make_llm_monitor()
        insight = AiInsight(
            id=new_id("ins"),
            org_id=self.owner.org_id,
            monitor_id=ids["monitor_id"],
            type="model_downgrade",
            severity="warning",
            title="Use a smaller model",
            description="gpt-4o-mini answers these prompts as well",
            savings=1.5,
            details={},
        )
        async with self.db.session() as session:
            session.add(insight)
            await session.commit()
        return {**ids, "insight_id": insight.id}

    async def make_cost_alert(self) -> Ids:
        ids = await self.make_llm_monitor()
        body = {"dailyBudget": 5.0, "alertEmails": self.owner.email}
        await self.call("PUT", f"/api/monitors/{ids['monitor_id']}/cost-alert", body)
        return ids

    async def make_incident(self) -> Ids:
        monitor_id = (await self.make_monitor())["monitor_id"]
        assert self.owner.org_id
        incident = await insert_incident(self.db, self.owner.org_id, monitor_id, started_at=utcnow())
        return {"monitor_id": monitor_id, "incident_id": incident.id}

    async def make_window(self) -> Ids:
        body = {
            "title": f"Patching {self.domain}",
            "startsAt": "2030-01-01T00:00:00.000Z",
            "endsAt": "2030-01-01T02:00:00.000Z",
        }
        return {"window_id": (await self.call("POST", "/api/maintenance", body))["id"]}

    async def make_channel(self) -> Ids:
        body = {"name": "Ops", "type": "WEBHOOK", "config": {"url": HOOK_URL}}
        return {"channel_id": (await self.call("POST", "/api/alert-channels", body))["id"]}

    async def make_page(self, is_public: bool = True) -> Ids:
        monitor_id = (await self.make_monitor(name=f"Shop of {self.domain}"))["monitor_id"]
        slug = new_slug()
        body = {
            "name": "Status",
            "slug": slug,
            "monitors": [monitor_id],
            "isPublic": is_public,
            "customDomain": f"{slug}.{self.domain}",
        }
        page = await self.call("POST", "/api/status-pages", body)
        return {"slug": slug, "page_monitor_id": monitor_id, "component_id": page["components"][0]["id"]}

    async def make_private_page(self) -> Ids:
        return await self.make_page(is_public=False)

    async def make_page_incident(self) -> Ids:
        ids = await self.make_page()
        body = {
            "title": f"Errors at {self.domain}",
            "impact": "major",
            "message": "Looking",
            "componentIds": [ids["component_id"]],
        }
        incident = await self.call("POST", f"/api/status-pages/{ids['slug']}/incidents", body)
        return {**ids, "incident_id": incident["id"]}

    async def make_subscriber(self) -> Ids:
        ids = await self.make_page()
        email = f"reader-{secrets.token_hex(4)}@{self.domain}"
        async with self.db.session() as session:
            page = await public.page_by_slug(session, ids["slug"])
            assert page is not None
            confirmation = await subscribers.subscribe(session, page, email, [], utcnow())
            assert confirmation is not None
            subscriber_id = await session.scalar(
                select(PageSubscriber.id).where(
                    PageSubscriber.page_id == page.id, PageSubscriber.email == email
                )
            )
        assert subscriber_id is not None
        return {
            **ids,
            "subscriber_id": subscriber_id,
            "confirm_token": confirmation.confirm_token,
            "unsubscribe_token": confirmation.unsubscribe_token,
        }

    async def make_api_key(self) -> Ids:
        return {"key_id": (await self.call("POST", "/api/api-keys", {"name": "spare"}))["id"]}

    async def make_fresh_user(self) -> Ids:
        account = await make_account(self.db, f"fresh-{secrets.token_hex(4)}@c.example", "Fresh")
        return {"email": account.email, "fresh_key": account.key}

    async def make_member(self) -> Ids:
        user = await self.make_fresh_user()
        member = await self.call("POST", "/api/team/invite", {"email": user["email"], "role": "VIEWER"})
        return {"member_id": member["id"], "member_email": user["email"], "member_key": user["fresh_key"]}


STANDING = [
    "monitor",
    "channel",
    "browser_check",
    "llm_monitor",
    "insight",
    "cost_alert",
    "incident",
    "window",
    "page",
    "private_page",
    "page_incident",
    "subscriber",
    "api_key",
    "member",
    "fresh_user",
]


@dataclass
class Matrix:
    api: httpx.AsyncClient
    runtime: Runtime
    a: Tenant  # org A: alice (OWNER), vera (VIEWER)
    b: Tenant  # org B: bob (OWNER)
    viewer: Account
    revoked: dict[str, str]
    revenuecat: FakeRevenueCat


async def _enterprise(db: Database, *org_ids: str) -> None:
    # No plan limit in the way of the disposable monitors, nor of BROWSER and custom domains.
    async with db.session() as session:
        await session.execute(
            update(Organization).where(Organization.id.in_(org_ids)).values(plan="ENTERPRISE")
        )
        await session.commit()


@asynccontextmanager
async def open_matrix(world: World, runtime: Runtime, database: Database) -> AsyncIterator[Matrix]:
    """Organizations A and B on the ENTERPRISE plan, each with its standing resources; a revoked key
    of A's owner; the API of a server that has RevenueCat (a local fake) and may post to loopback."""
    revenuecat = FakeRevenueCat()
    await revenuecat.start()
    configured_runtime = configured(
        runtime, revenuecat_api_url=revenuecat.url, alerts_allow_private_urls=True
    )
    try:
        async with api_client(configured_runtime) as api:
            await _enterprise(database, world.org_a, world.org_b)
            a = Tenant(api, database, world.alice, "a.example")
            b = Tenant(api, database, world.bob, "b.example")
            await a.stand(STANDING)
            await b.stand(STANDING)
            key = await a.call("POST", "/api/api-keys", {"name": "revoked"})
            await a.call("DELETE", f"/api/api-keys/{key['id']}")
            await runtime.rate_limiter.reset()
            yield Matrix(
                api, runtime, a, b, world.vera, {"Authorization": f"Bearer {key['key']}"}, revenuecat
            )
    finally:
        await revenuecat.stop()
