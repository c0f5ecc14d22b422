"""Tenancy and roles across every route, generated from the app's route table (DESIGN.md, "Tenancy
and access"): each route x (no key, a revoked key, another organization's OWNER, a VIEWER, the
OWNER) answers 401 / 401 / 404 / 403 on writes (reads succeed) / success, on real resources of
organization A while organization B has its own. ROUTES holds a row for every route; a route added
without one fails test_every_route_has_a_row. Public routes take no key: the tests named in their
rows prove they reveal nothing of another organization.

The OWNER's writes act on resources made for that call alone, so the rows' order does not matter;
the other callers' writes are refused before they change anything.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select, update

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from control_plane.core.ids import new_id
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import Organization
from control_plane.models.ai import AiInsight
from control_plane.models.status_pages import PageSubscriber, StatusPage
from control_plane.settings import Settings
from control_plane.status_pages import public, subscribers
from tests.ai.otlp_support import CHAT, export, span
from tests.billing_support import WEBHOOK_SECRET, FakeRevenueCat, api_client, configured, webhook_event
from tests.conftest import Account, World, make_account
from tests.factories import record, result
from tests.incident_factories import insert_incident

Ids = dict[str, str]
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
# A WEBHOOK channel's test is sent here: nothing listens on the discard port, so it fails at once.
HOOK_URL = "http://127.0.0.1:9/traxo"


@dataclass(frozen=True)
class Row:
    """What one route needs: `target`, the kind of resource that fills its path (made by MAKERS:
    the organization's standing one for reads and refused writes, a fresh one for the OWNER's
    write); `body` from the ids of that resource and the organization's standing ones; `ok`, the
    OWNER's status; `shows`, an id the members' answer must contain (so that the other
    organization's answer lacking it means something); `expect`, cells that differ from the rule,
    each with its reason in the row's comment; `public`, the test proving what a public route
    reveals (its cells are its own)."""

    target: str | None = None
    body: Callable[[Ids], Any] | None = None
    ok: int = 200
    query: str = ""
    shows: str | None = None
    expect: dict[str, int] = field(default_factory=dict)
    public: str | None = None


def _slug() -> str:
    return f"page-{secrets.token_hex(4)}"


def _monitor_body(ids: Ids) -> dict[str, Any]:
    return {
        "name": "Checkout",
        "type": "HTTP",
        "url": "https://example.com/checkout",
        "interval": 300,
        "config": {"dependsOn": [ids["monitor_id"]]},
        "alertChannelIds": [ids["channel_id"]],
    }


def _page_body(ids: Ids) -> dict[str, Any]:
    return {"name": "Shop status", "slug": _slug(), "monitors": [ids["monitor_id"]]}


def _window_body(ids: Ids) -> dict[str, Any]:
    return {
        "title": "Database upgrade",
        "startsAt": "2030-06-20T02:00:00.000Z",
        "endsAt": "2030-06-20T04:00:00.000Z",
        "monitorId": ids["monitor_id"],
    }


_UPDATE = {"status": "identified", "message": "A bad deploy; rolling back."}
_HEARTBEAT = "test_heartbeat_tokens_name_their_own_monitor_only"
_INGEST = "test_ai_ingest_stores_on_the_monitors_organization_only"
_PAGES = "test_public_pages_show_their_own_organization_only"
_BADGES = "test_badges_answer_for_opted_in_monitors_only"
_SUBSCRIBE = "test_subscriptions_reach_their_own_page_only"
_WEBHOOK = "test_the_billing_webhook_changes_the_organization_it_names_only"
_OPERATOR = "test_operator_routes_show_no_organization"

ROUTES: dict[tuple[str, str], Row] = {
    ("POST", "/api/ai/ingest/{monitorId}"): Row(public=_INGEST),
    ("POST", "/api/ai/otlp/{monitorId}/v1/traces"): Row(public=_INGEST),
    ("GET", "/api/organization"): Row(shows="org.org_id"),
    # A user belongs to one organization at most: the members' own answer is a 409 (a fresh user
    # without one creates it, in test_a_user_without_an_organization_creates_one).
    ("POST", "/api/organization"): Row(
        body=lambda ids: {"name": "Another", "slug": _slug()}, expect={"stranger": 409, "owner": 409}
    ),
    ("PATCH", "/api/organization"): Row(body=lambda ids: {"name": "Org-A"}),
    # Keys are their user's: the stranger and the VIEWER list their own.
    ("GET", "/api/api-keys"): Row(),
    ("POST", "/api/api-keys"): Row(body=lambda ids: {"name": "CI"}, ok=201),
    ("DELETE", "/api/api-keys/{key_id}"): Row(target="api_key"),
    ("GET", "/api/team"): Row(shows="member.member_id"),
    ("POST", "/api/team/invite"): Row(
        target="fresh_user", body=lambda ids: {"email": ids["email"], "role": "VIEWER"}, ok=201
    ),
    ("DELETE", "/api/team/{member_id}"): Row(target="member"),
    ("GET", "/api/billing"): Row(),
    ("POST", "/api/billing/checkout"): Row(body=lambda ids: {"plan": "PRO"}),
    ("POST", "/api/billing/portal"): Row(),
    ("POST", "/api/billing/webhook"): Row(public=_WEBHOOK),
    ("GET", "/api/monitors"): Row(shows="monitor.monitor_id"),
    ("POST", "/api/monitors"): Row(body=_monitor_body, ok=201),
    ("GET", "/api/monitors/{monitor_id}"): Row(target="monitor"),
    ("PUT", "/api/monitors/{monitor_id}"): Row(target="monitor", body=lambda ids: {"name": "Renamed"}),
    ("DELETE", "/api/monitors/{monitor_id}"): Row(target="monitor"),
    ("POST", "/api/monitors/{monitor_id}/pause"): Row(target="monitor"),
    ("POST", "/api/monitors/{monitor_id}/resume"): Row(target="monitor"),
    ("GET", "/api/monitors/{monitor_id}/checks"): Row(target="browser_check", shows="browser_check.check_id"),
    ("GET", "/api/monitors/{monitor_id}/incidents"): Row(target="incident", shows="incident.incident_id"),
    ("GET", "/api/monitors/{monitor_id}/performance"): Row(target="monitor", query="?hours=1"),
    ("GET", "/api/monitors/{monitor_id}/checks/{check_id}/screenshot"): Row(target="browser_check"),
    ("GET", "/api/dashboard/stats"): Row(),
    ("GET", "/api/incidents"): Row(shows="incident.incident_id"),
    ("GET", "/api/incidents/{incident_id}"): Row(target="incident"),
    ("POST", "/api/incidents/{incident_id}/updates"): Row(
        target="incident", body=lambda ids: _UPDATE, ok=201
    ),
    ("POST", "/api/incidents/{incident_id}/acknowledge"): Row(target="incident"),
    ("GET", "/api/monitors/{monitor_id}/sla"): Row(target="monitor"),
    ("GET", "/api/maintenance"): Row(shows="window.window_id"),
    ("POST", "/api/maintenance"): Row(body=_window_body, ok=201),
    ("PATCH", "/api/maintenance/{window_id}"): Row(target="window", body=lambda ids: {"title": "Later"}),
    ("DELETE", "/api/maintenance/{window_id}"): Row(target="window"),
    ("GET", "/api/alert-channels"): Row(shows="channel.channel_id"),
    ("POST", "/api/alert-channels"): Row(
        body=lambda ids: {"name": "Ops", "type": "WEBHOOK", "config": {"url": HOOK_URL}}, ok=201
    ),
    ("GET", "/api/alert-channels/{channel_id}"): Row(target="channel"),
    ("PATCH", "/api/alert-channels/{channel_id}"): Row(
        target="channel", body=lambda ids: {"name": "On call"}
    ),
    ("DELETE", "/api/alert-channels/{channel_id}"): Row(target="channel"),
    ("POST", "/api/alert-channels/{channel_id}/test"): Row(target="channel"),
    ("GET", "/api/alert-channels/{channel_id}/deliveries"): Row(target="channel"),
    **{
        (method, f"/api/heartbeat/{{token}}{suffix}"): Row(public=_HEARTBEAT)
        for method in ("GET", "POST")
        for suffix in ("", "/start", "/fail", "/{exitCode}")
    },
    ("GET", "/api/monitors/{monitor_id}/ai-usage"): Row(target="llm_monitor"),
    ("GET", "/api/monitors/{monitor_id}/ai-events"): Row(target="llm_monitor", shows="llm_monitor.event_id"),
    ("GET", "/api/monitors/{monitor_id}/insights"): Row(target="insight", shows="insight.insight_id"),
    ("PATCH", "/api/monitors/{monitor_id}/insights/{insight_id}"): Row(
        target="insight", body=lambda ids: {"dismissed": True}
    ),
    ("GET", "/api/monitors/{monitor_id}/cost-alert"): Row(target="cost_alert"),
    ("PUT", "/api/monitors/{monitor_id}/cost-alert"): Row(
        target="llm_monitor", body=lambda ids: {"dailyBudget": 10.0, "alertEmails": "alice@a.example"}
    ),
    ("DELETE", "/api/monitors/{monitor_id}/cost-alert"): Row(target="cost_alert"),
    ("GET", "/api/status-pages"): Row(shows="page.slug"),
    ("POST", "/api/status-pages"): Row(body=_page_body, ok=201),
    # The public view of a private page: without a key of its organization it is absent (the
    # revoked key reads as no key); public pages are test_public_pages_show_their_own_organization_only's.
    ("GET", "/api/status-pages/{slug}"): Row(
        target="private_page", expect={"anonymous": 404, "revoked": 404}
    ),
    ("PUT", "/api/status-pages/{slug}"): Row(target="page", body=lambda ids: {"name": "Renamed"}),
    ("DELETE", "/api/status-pages/{slug}"): Row(target="page"),
    ("POST", "/api/status-pages/{slug}/verify-domain"): Row(target="page"),
    ("GET", "/api/status-pages/{slug}/verify-domain"): Row(target="page"),
    ("POST", "/api/status-pages/{slug}/incidents"): Row(
        target="page",
        body=lambda ids: {
            "title": "Errors",
            "impact": "major",
            "message": "Looking",
            "componentIds": [ids["component_id"]],
        },
        ok=201,
    ),
    ("GET", "/api/status-pages/{slug}/incidents"): Row(
        target="page_incident", shows="page_incident.incident_id"
    ),
    ("GET", "/api/status-pages/{slug}/incidents/{incident_id}"): Row(target="page_incident"),
    ("PATCH", "/api/status-pages/{slug}/incidents/{incident_id}"): Row(
        target="page_incident", body=lambda ids: {"impact": "minor"}
    ),
    ("DELETE", "/api/status-pages/{slug}/incidents/{incident_id}"): Row(target="page_incident"),
    ("POST", "/api/status-pages/{slug}/incidents/{incident_id}/updates"): Row(
        target="page_incident", body=lambda ids: _UPDATE, ok=201
    ),
    ("GET", "/api/status-pages/{slug}/subscribers"): Row(
        target="subscriber", shows="subscriber.subscriber_id"
    ),
    ("DELETE", "/api/status-pages/{slug}/subscribers/{subscriber_id}"): Row(target="subscriber"),
    ("GET", "/badge/{monitorId}/status.svg"): Row(public=_BADGES),
    ("GET", "/badge/{monitorId}/uptime.svg"): Row(public=_BADGES),
    ("GET", "/badge/{monitorId}/shields.json"): Row(public=_BADGES),
    ("GET", "/status/{slug}"): Row(public=_PAGES),
    ("GET", "/"): Row(public=_PAGES),  # a page's verified custom domain
    ("GET", "/status/{slug}/feed.rss"): Row(public=_PAGES),
    ("GET", "/status/{slug}/feed.atom"): Row(public=_PAGES),
    ("POST", "/status/{slug}/subscribe"): Row(public=_SUBSCRIBE),
    ("GET", "/status/{slug}/subscribe/confirm"): Row(public=_SUBSCRIBE),
    ("GET", "/status/{slug}/unsubscribe"): Row(public=_SUBSCRIBE),
    ("POST", "/status/{slug}/unsubscribe"): Row(public=_SUBSCRIBE),
    **{
        ("GET", path): Row(public=_OPERATOR)
        for path in (
            "/api/openapi.json",
            "/api/docs",
            "/api/docs/static/{asset}",
            "/api/docs/oauth2-redirect",
            "/api/redoc",
            "/metrics",
            "/healthz",
            "/readyz",
        )
    },
}


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
        maker: Callable[[], Any] = getattr(self, f"_{kind}")
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

    async def _monitor(self, **fields: Any) -> Ids:
        body = {"name": "API", "type": "HTTP", "url": "https://example.com/health", "interval": 300, **fields}
        return {"monitor_id": (await self.call("POST", "/api/monitors", body))["id"]}

    async def _browser_check(self) -> Ids:
        monitor_id = (await self._monitor())["monitor_id"]
        check = result(monitor_id, utcnow(), status="DOWN", screenshot_png=PNG)
        await record(self.db, [check])
        return {"monitor_id": monitor_id, "check_id": check.id}

    async def _llm_monitor(self) -> Ids:
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

    async def _insight(self) -> Ids:
        ids = await self._llm_monitor()
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

    async def _cost_alert(self) -> Ids:
        ids = await self._llm_monitor()
        body = {"dailyBudget": 5.0, "alertEmails": self.owner.email}
        await self.call("PUT", f"/api/monitors/{ids['monitor_id']}/cost-alert", body)
        return ids

    async def _incident(self) -> Ids:
        monitor_id = (await self._monitor())["monitor_id"]
        assert self.owner.org_id
        incident = await insert_incident(self.db, self.owner.org_id, monitor_id, started_at=utcnow())
        return {"monitor_id": monitor_id, "incident_id": incident.id}

    async def _window(self) -> Ids:
        body = {
            "title": "Patching",
            "startsAt": "2030-01-01T00:00:00.000Z",
            "endsAt": "2030-01-01T02:00:00.000Z",
        }
        return {"window_id": (await self.call("POST", "/api/maintenance", body))["id"]}

    async def _channel(self) -> Ids:
        body = {"name": "Ops", "type": "WEBHOOK", "config": {"url": HOOK_URL}}
        return {"channel_id": (await self.call("POST", "/api/alert-channels", body))["id"]}

    async def _page(self, public: bool = True) -> Ids:
        monitor_id = (await self._monitor(name=f"Shop of {self.domain}"))["monitor_id"]
        slug = _slug()
        body = {
            "name": "Status",
            "slug": slug,
            "monitors": [monitor_id],
            "isPublic": public,
            "customDomain": f"{slug}.{self.domain}",
        }
        page = await self.call("POST", "/api/status-pages", body)
        return {"slug": slug, "page_monitor_id": monitor_id, "component_id": page["components"][0]["id"]}

    async def _private_page(self) -> Ids:
        return await self._page(public=False)

    async def _page_incident(self) -> Ids:
        ids = await self._page()
        body = {
            "title": f"Errors at {self.domain}",
            "impact": "major",
            "message": "Looking",
            "componentIds": [ids["component_id"]],
        }
        incident = await self.call("POST", f"/api/status-pages/{ids['slug']}/incidents", body)
        return {**ids, "incident_id": incident["id"]}

    async def _subscriber(self) -> Ids:
        ids = await self._page()
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

    async def _api_key(self) -> Ids:
        return {"key_id": (await self.call("POST", "/api/api-keys", {"name": "spare"}))["id"]}

    async def _fresh_user(self) -> Ids:
        account = await make_account(self.db, f"fresh-{secrets.token_hex(4)}@c.example", "Fresh")
        return {"email": account.email, "fresh_key": account.key}

    async def _member(self) -> Ids:
        user = await self._fresh_user()
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


@pytest.fixture
async def matrix(world: World, runtime: Runtime, database: Database) -> AsyncIterator[Matrix]:
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


def route_table(settings: Settings, runtime: Runtime) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, from its routes (the OpenAPI document leaves some out)."""
    app = create_app(settings, runtime)
    return {
        (method, route.path_format)
        for route in iter_route_contexts(app.routes)
        for method in route.methods or ()
        if method != "HEAD"
    }


def test_every_route_has_a_row(settings, runtime):
    served = route_table(settings, runtime)
    assert len(served) > 60  # the walk sees the app, not an empty list
    assert sorted(served - ROUTES.keys()) == [], "routes without a row in ROUTES: add one"
    assert sorted(ROUTES.keys() - served) == [], "rows of routes the app no longer serves"


def test_every_public_row_names_a_test_of_this_module():
    module = sys.modules[__name__]
    named = {row.public for row in ROUTES.values() if row.public}
    assert all(callable(getattr(module, name, None)) for name in named), named


def _fill(path: str, ids: Ids) -> str:
    for name, value in ids.items():
        path = path.replace(f"{{{name}}}", value)
    assert "{" not in path, f"{path}: a path parameter without a value"
    return path


def _absent(value: str) -> str:
    """An identifier of the same shape that names nothing."""
    prefix, underscore, _ = value.partition("_")
    if underscore:
        return new_id(prefix)
    if "@" in value:
        return f"nobody-{secrets.token_hex(4)}@{value.partition('@')[2]}"
    return _slug()


def _replaced(text: str, substitutes: dict[str, str]) -> str:
    for identifier in sorted(substitutes, key=len, reverse=True):
        text = text.replace(identifier, substitutes[identifier])
    return text


def _excerpt(response: httpx.Response) -> str:
    if response.headers.get("content-type", "").startswith(("application/json", "text/")):
        return response.text[:300]
    return repr(response.content[:40])  # e.g. a PNG


@dataclass
class Cells:
    """One route's checks; failures are collected, so that one run lists every wrong cell."""

    matrix: Matrix
    method: str
    path: str
    row: Row
    failures: list[str]

    def fail(self, caller: str, message: str) -> None:
        self.failures.append(f"{self.method} {self.path} as {caller}: {message}")

    async def send(self, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
        await self.matrix.runtime.rate_limiter.reset()  # more calls than one address's failed-key budget
        content = None if body is None else json.dumps(body)
        return await self.matrix.api.request(
            self.method, path, content=content, headers={"Content-Type": "application/json", **headers}
        )

    def expect(self, caller: str, response: httpx.Response, status: int) -> bool:
        if response.status_code != status:
            self.fail(caller, f"answered {response.status_code}, not {status}: {_excerpt(response)}")
            return False
        if status >= 400 and not isinstance(response.json().get("error"), str):
            self.fail(caller, f"a {status} without an error: {_excerpt(response)}")
            return False
        return True

    def shown(self, caller: str, response: httpx.Response) -> None:
        if self.row.shows is None:
            return
        kind, _, key = self.row.shows.partition(".")
        wanted = self.matrix.a.standing[kind][key]
        if wanted not in response.text:
            self.fail(caller, f"the answer lacks {self.row.shows} {wanted}")

    async def run(self) -> None:
        a, row = self.matrix.a, self.row
        write = self.method in WRITES
        standing = a.standing[row.target] if row.target else {}
        ids = {**a.base, **standing}
        path = _fill(self.path, ids) + row.query
        body = row.body(ids) if row.body else None

        self.expect("anonymous", await self.send(path, body, {}), row.expect.get("anonymous", 401))
        self.expect(
            "revoked", await self.send(path, body, self.matrix.revoked), row.expect.get("revoked", 401)
        )
        if write:  # the key and the role are asked before the body: an empty one changes nothing
            self.expect("anonymous", await self.send(path, {}, {}), row.expect.get("anonymous", 401))
            empty = await self.send(path, {}, self.matrix.viewer.headers)
            if self.expect("viewer", empty, row.expect.get("viewer", 403)) and "VIEWER" not in empty.text:
                self.fail("viewer", f"a 403 that does not name the role: {empty.text}")

        viewer = await self.send(path, body, self.matrix.viewer.headers)
        if self.expect("viewer", viewer, row.expect.get("viewer", 403 if write else row.ok)):
            if write and "VIEWER" not in viewer.json()["error"]:
                self.fail("viewer", f"a 403 that does not name the role: {viewer.text}")
            if not write:
                self.shown("viewer", viewer)

        await self.stranger(path, body, ids)

        if write and row.target:  # the OWNER's write changes a resource of its own
            ids = {**a.base, **(await a.make(row.target))}
            path = _fill(self.path, ids) + row.query
            body = row.body(ids) if row.body else None
        owner = await self.send(path, body, a.owner.headers)
        if self.expect("owner", owner, row.expect.get("owner", row.ok)) and not write:
            self.shown("owner", owner)

    async def stranger(self, path: str, body: Any, ids: Ids) -> None:
        """Another organization's OWNER: A's resource in the path is a 404 that says no more than
        one for an id that does not exist; a route of no resource answers of B alone, and a body
        naming A's resources is refused as one naming none."""
        a, b, row = self.matrix.a, self.matrix.b, self.row
        headers = b.owner.headers
        if "{" in self.path:
            substitutes = {value: _absent(value) for value in ids.values()}
            response = await self.send(path, body, headers)
            absent = await self.send(_replaced(path, substitutes), body, headers)
            if self.expect("stranger", response, row.expect.get("stranger", 404)):
                if _replaced(response.text, substitutes) != absent.text:
                    self.fail("stranger", f"404 {response.text} differs from an absent id's {absent.text}")
            return
        if row.target:  # e.g. the user B invites: its own
            body = row.body({**ids, **(await b.make(row.target))}) if row.body else None
        text = json.dumps(body)
        named = {identifier for identifier in a.identifiers() if identifier in text}
        response = await self.send(path, body, headers)
        if named:
            substitutes = {identifier: _absent(identifier) for identifier in named}
            absent = await self.send(path, json.loads(_replaced(text, substitutes)), headers)
            if not 400 <= absent.status_code < 500 or (
                response.status_code,
                _replaced(response.text, substitutes),
            ) != (absent.status_code, absent.text):
                self.fail(
                    "stranger",
                    f"a body naming A's {sorted(named)} answered {response.status_code} "
                    f"{_excerpt(response)}; naming nothing, {absent.status_code} {_excerpt(absent)}",
                )
            return
        if self.expect("stranger", response, row.expect.get("stranger", row.ok)):
            leaked = {identifier for identifier in a.identifiers() if identifier in response.text}
            if leaked:
                self.fail("stranger", f"the answer names A's {sorted(leaked)}: {_excerpt(response)}")


async def test_every_route_answers_each_caller_as_its_role_allows(matrix):
    failures: list[str] = []
    for (method, path), row in ROUTES.items():
        if row.public is None:
            await Cells(matrix, method, path, row, failures).run()
    assert not failures, "\n".join(failures)


async def _same_as_absent(
    api: httpx.AsyncClient, method: str, path: str, substitutes: dict[str, str], **request: Any
) -> httpx.Response:
    """The answer for `path`, asserted to be the answer for `path` with each of `substitutes`'
    identifiers replaced by one that names nothing (the identifier itself replaced in the text)."""
    response = await api.request(method, path, **request)
    if request.get("json") is not None:
        request["json"] = json.loads(_replaced(json.dumps(request["json"]), substitutes))
    absent = await api.request(method, _replaced(path, substitutes), **request)
    assert 400 <= response.status_code < 500, f"{method} {path}: {response.status_code} {response.text}"
    assert (response.status_code, _replaced(response.text, substitutes)) == (absent.status_code, absent.text)
    return response


async def _checks_total(matrix: Matrix, tenant: Tenant, monitor_id: str) -> int:
    response = await matrix.api.get(f"/api/monitors/{monitor_id}/checks", headers=tenant.owner.headers)
    assert response.status_code == 200, response.text
    total: int = response.json()["pagination"]["total"]
    return total


async def test_heartbeat_tokens_name_their_own_monitor_only(matrix):
    a, b = matrix.a, matrix.b
    body = {"name": "Backup", "type": "HEARTBEAT", "interval": 300}
    a_heartbeat = await a.call("POST", "/api/monitors", body)
    b_heartbeat = await b.call("POST", "/api/monitors", body)
    token = a_heartbeat["heartbeatUrl"].rsplit("/", 1)[1]
    assert token.startswith("hb_")
    for method in ("GET", "POST"):
        for suffix in ("", "/start", "/fail", "/0"):
            await matrix.runtime.rate_limiter.reset()
            response = await matrix.api.request(method, f"/api/heartbeat/{token}{suffix}")
            assert response.status_code == 200 and response.json() == {"ok": True}, response.text
            # Another organization's ids are no tokens: their answer is an unknown token's.
            for other in (b_heartbeat["id"], a_heartbeat["id"], a.standing["monitor"]["monitor_id"]):
                await _same_as_absent(
                    matrix.api, method, f"/api/heartbeat/{other}{suffix}", {other: _absent(other)}
                )
    assert await _checks_total(matrix, a, a_heartbeat["id"]) == 6  # every finish; the starts are none
    assert await _checks_total(matrix, b, b_heartbeat["id"]) == 0


async def _ai_events(matrix: Matrix, tenant: Tenant, monitor_id: str) -> list[dict[str, Any]]:
    response = await matrix.api.get(f"/api/monitors/{monitor_id}/ai-events", headers=tenant.owner.headers)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]
    return events


async def test_ai_ingest_stores_on_the_monitors_organization_only(matrix):
    a, b = matrix.a, matrix.b
    a_llm, b_llm = a.standing["llm_monitor"]["monitor_id"], b.standing["llm_monitor"]["monitor_id"]
    event = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "promptTokens": 7,
        "completionTokens": 3,
        "latencyMs": 50,
    }
    response = await matrix.api.post(f"/api/ai/ingest/{a_llm}", json=event)
    assert response.status_code == 200, response.text
    traces = export(span({**CHAT, "gen_ai.request.model": "gpt-4o-mini"})).SerializeToString()
    protobuf = {"Content-Type": "application/x-protobuf"}
    exported = await matrix.api.post(f"/api/ai/otlp/{a_llm}/v1/traces", content=traces, headers=protobuf)
    assert exported.status_code == 200, exported.text
    a_events = await _ai_events(matrix, a, a_llm)
    # The standing event, the posted one, the exported span's; B's has its own standing one only.
    assert len(a_events) == 3 and {e["monitorId"] for e in a_events} == {a_llm}
    assert [e["id"] for e in await _ai_events(matrix, b, b_llm)] == [b.standing["llm_monitor"]["event_id"]]
    # What routes no LLM monitor answers as an id that names none: a heartbeat token, a channel's id.
    token = (await a.call("POST", "/api/monitors", {"name": "Cron", "type": "HEARTBEAT", "interval": 300}))[
        "heartbeatUrl"
    ].rsplit("/", 1)[1]
    for other in (token, a.standing["channel"]["channel_id"], a.standing["window"]["window_id"]):
        substitutes = {other: _absent(other)}
        await _same_as_absent(matrix.api, "POST", f"/api/ai/ingest/{other}", substitutes, json=event)
        await _same_as_absent(
            matrix.api,
            "POST",
            f"/api/ai/otlp/{other}/v1/traces",
            substitutes,
            content=traces,
            headers=protobuf,
        )


async def _verify_domain(db: Database, slug: str) -> None:
    async with db.session() as session:
        await session.execute(
            update(StatusPage).where(StatusPage.slug == slug).values(domain_verified_at=utcnow())
        )
        await session.commit()


async def test_public_pages_show_their_own_organization_only(matrix):
    a, b, api = matrix.a, matrix.b, matrix.api
    page, private = a.standing["page"], a.standing["private_page"]
    view = await api.get(f"/api/status-pages/{page['slug']}")
    assert view.status_code == 200, view.text
    assert [c["id"] for c in view.json()["data"]["components"]] == [page["component_id"]]
    assert not {i for i in b.identifiers() if i in view.text}
    html = await api.get(f"/status/{page['slug']}")
    assert html.status_code == 200 and "Shop of a.example" in html.text
    assert not {i for i in b.identifiers() if i in html.text}
    # A private page is an unknown page to visitors, in every form.
    for path in ("/status/{}", "/status/{}/feed.rss", "/status/{}/feed.atom", "/api/status-pages/{}"):
        await matrix.runtime.rate_limiter.reset()
        await _same_as_absent(api, "GET", path.format(private["slug"]), {private["slug"]: _slug()})
    # A page's feed carries its own incidents only.
    a_incident, b_incident = a.standing["page_incident"], b.standing["page_incident"]
    for kind in ("rss", "atom"):
        feed = await api.get(f"/status/{a_incident['slug']}/feed.{kind}")
        assert feed.status_code == 200 and "Errors at a.example" in feed.text, feed.text
        assert "b.example" not in feed.text and b_incident["incident_id"] not in feed.text
    # A verified custom domain serves its own page; an unverified one, or a private page's, none.
    await _verify_domain(a.db, page["slug"])
    await _verify_domain(a.db, private["slug"])
    served = await api.get("/", headers={"Host": f"{page['slug']}.a.example"})
    assert served.status_code == 200 and "Shop of a.example" in served.text
    assert "b.example" not in served.text
    for host in (f"{b.standing['page']['slug']}.b.example", f"{private['slug']}.a.example"):
        absent = await api.get("/", headers={"Host": host})
        assert (
            absent.status_code == 404 and "Shop of" not in absent.text and private["slug"] not in absent.text
        )


async def test_badges_answer_for_opted_in_monitors_only(matrix):
    a, b, api = matrix.a, matrix.b, matrix.api
    opted = {"name": "Badge of a.example", "config": {"publicBadge": True}}
    a_badge = (await a._monitor(**opted))["monitor_id"]
    b_badge = (await b._monitor(name="Badge of b.example", config={"publicBadge": True}))["monitor_id"]
    for badge in ("status.svg", "uptime.svg", "shields.json"):
        await matrix.runtime.rate_limiter.reset()
        shown = await api.get(f"/badge/{a_badge}/{badge}")
        assert shown.status_code == 200, shown.text
        assert "b.example" not in shown.text and b_badge not in shown.text
        # A monitor that did not opt in, and a heartbeat-less token, answer as no monitor at all.
        not_opted = a.standing["monitor"]["monitor_id"]
        await _same_as_absent(api, "GET", f"/badge/{not_opted}/{badge}", {not_opted: _absent(not_opted)})
        channel = a.standing["channel"]["channel_id"]
        await _same_as_absent(api, "GET", f"/badge/{channel}/{badge}", {channel: _absent(channel)})


async def test_subscriptions_reach_their_own_page_only(matrix):
    a, b, api = matrix.a, matrix.b, matrix.api
    page, private = a.standing["subscriber"], a.standing["private_page"]
    b_page = b.standing["subscriber"]
    await _same_as_absent(
        api,
        "POST",
        f"/status/{private['slug']}/subscribe",
        {private["slug"]: _slug()},
        json={"email": "x@c.example"},
    )
    await matrix.runtime.rate_limiter.reset()
    b_component = b_page["component_id"]
    await _same_as_absent(
        api,
        "POST",
        f"/status/{page['slug']}/subscribe",
        {b_component: _absent(b_component)},
        json={"email": "y@c.example", "components": [b_component]},
    )
    # A's mailed links under B's page (or a private page) do nothing, as made-up tokens do.
    for slug in (b_page["slug"], private["slug"]):
        links = [
            ("GET", f"/status/{slug}/subscribe/confirm?token={page['confirm_token']}", page["confirm_token"]),
            (
                "GET",
                f"/status/{slug}/unsubscribe?token={page['unsubscribe_token']}",
                page["unsubscribe_token"],
            ),
            (
                "POST",
                f"/status/{slug}/unsubscribe?token={page['unsubscribe_token']}",
                page["unsubscribe_token"],
            ),
        ]
        for method, path, token in links:
            await _same_as_absent(api, method, path, {token: secrets.token_urlsafe(24)})
    listed = await api.get(f"/api/status-pages/{page['slug']}/subscribers", headers=a.owner.headers)
    [subscriber] = listed.json()["data"]
    assert subscriber["id"] == page["subscriber_id"] and subscriber["confirmed"] is False, subscriber
    confirmed = await api.get(f"/status/{page['slug']}/subscribe/confirm?token={page['confirm_token']}")
    assert confirmed.status_code == 200, confirmed.text
    left = await api.post(f"/status/{page['slug']}/unsubscribe?token={page['unsubscribe_token']}")
    assert left.status_code == 200, left.text


async def test_the_billing_webhook_changes_the_organization_it_names_only(matrix):
    a, b, api = matrix.a, matrix.b, matrix.api
    body = webhook_event("INITIAL_PURCHASE", a.standing["org"]["org_id"])
    refused = await api.post("/api/billing/webhook", json=body, headers={"Authorization": "guess"})
    assert refused.status_code == 401
    response = await api.post("/api/billing/webhook", json=body, headers={"Authorization": WEBHOOK_SECRET})
    assert response.status_code == 200, response.text
    assert "org-b" not in response.text and b.standing["org"]["org_id"] not in response.text
    plans = {}
    for tenant in (a, b):
        billing = await api.get("/api/billing", headers=tenant.owner.headers)
        plans[tenant.domain] = billing.json()["plan"]
    assert plans == {"a.example": "PRO", "b.example": "ENTERPRISE"}


async def test_operator_routes_show_no_organization(matrix):
    a, api = matrix.a, matrix.api
    paths = [path for (_, path), row in ROUTES.items() if row.public == _OPERATOR]
    assert "/metrics" in paths
    # The metrics name every tenant's monitors: they are the operator's (loopback or its token), and
    # a tenant's key through the proxy opens nothing.
    proxied = {"X-Forwarded-For": "203.0.113.9", **a.owner.headers}
    metrics = await api.get("/metrics", headers=proxied)
    assert metrics.status_code == 403 and not {i for i in a.identifiers() if i in metrics.text}
    for path in paths:
        if path == "/metrics":
            continue
        filled = path.replace("{asset}", "swagger-ui.css")
        anonymous = await api.get(filled)
        owner = await api.get(filled, headers=a.owner.headers)
        assert anonymous.status_code == owner.status_code and anonymous.status_code < 500, (
            path,
            anonymous.text,
        )
        leaked = {i for i in a.identifiers() if i in owner.text}
        assert not leaked, (path, leaked)


async def test_a_user_without_an_organization_creates_one(matrix):
    fresh = await matrix.a.make("fresh_user")
    headers = {"Authorization": f"Bearer {fresh['fresh_key']}"}
    created = await matrix.api.post(
        "/api/organization", json={"name": "Gamma", "slug": _slug()}, headers=headers
    )
    assert created.status_code == 201, created.text
    read = await matrix.api.get("/api/organization", headers=headers)
    assert read.json()["data"]["id"] == created.json()["data"]["id"]
    assert not {i for i in matrix.a.identifiers() | matrix.b.identifiers() if i in read.text}


async def test_a_path_of_its_own_resource_and_another_organizations_is_a_404(matrix):
    """B's own parent with A's child: the child is looked up under the parent, not on its own."""
    a, b = matrix.a, matrix.b
    b_llm, b_page = b.standing["insight"]["monitor_id"], b.standing["page_incident"]["slug"]
    check, insight = a.standing["browser_check"]["check_id"], a.standing["insight"]["insight_id"]
    incident, subscriber = (
        a.standing["page_incident"]["incident_id"],
        a.standing["subscriber"]["subscriber_id"],
    )
    b_monitor = b.standing["browser_check"]["monitor_id"]
    mixed = [
        ("GET", f"/api/monitors/{b_monitor}/checks/{check}/screenshot", check, None),
        ("PATCH", f"/api/monitors/{b_llm}/insights/{insight}", insight, {"dismissed": True}),
        ("GET", f"/api/status-pages/{b_page}/incidents/{incident}", incident, None),
        ("PATCH", f"/api/status-pages/{b_page}/incidents/{incident}", incident, {"impact": "minor"}),
        ("POST", f"/api/status-pages/{b_page}/incidents/{incident}/updates", incident, _UPDATE),
        ("DELETE", f"/api/status-pages/{b_page}/incidents/{incident}", incident, None),
        ("DELETE", f"/api/status-pages/{b_page}/subscribers/{subscriber}", subscriber, None),
    ]
    # Not B's at all, but refused by B as no member (not as the owner, which would confirm it).
    owner_member = a.standing["org"]["owner_member_id"]
    mixed.append(("DELETE", f"/api/team/{owner_member}", owner_member, None))
    for method, path, child, body in mixed:
        response = await _same_as_absent(
            matrix.api, method, path, {child: _absent(child)}, json=body, headers=b.owner.headers
        )
        assert response.status_code == 404, (method, path, response.text)
    # A's resources are as they were.
    shown = await matrix.api.get(
        f"/api/status-pages/{a.standing['page_incident']['slug']}/incidents/{incident}",
        headers=a.owner.headers,
    )
    assert shown.status_code == 200 and shown.json()["data"]["impact"] == "major"


async def test_a_body_naming_another_organizations_resources_is_refused_as_one_naming_none(matrix):
    """B's writes to its own resources, naming A's: refused as a made-up id is, A's id not confirmed."""
    a, b = matrix.a, matrix.b
    a_monitor, a_channel = a.standing["monitor"]["monitor_id"], a.standing["channel"]["channel_id"]
    a_component = a.standing["page"]["component_id"]
    b_monitor, b_page = b.standing["monitor"]["monitor_id"], b.standing["page_incident"]
    b_window = b.standing["window"]["window_id"]
    writes = [
        ("PUT", f"/api/monitors/{b_monitor}", {"alertChannelIds": [a_channel]}, a_channel),
        ("PUT", f"/api/monitors/{b_monitor}", {"config": {"dependsOn": [a_monitor]}}, a_monitor),
        ("PUT", f"/api/status-pages/{b_page['slug']}", {"monitors": [a_monitor]}, a_monitor),
        ("PATCH", f"/api/maintenance/{b_window}", {"monitorId": a_monitor}, a_monitor),
        (
            "POST",
            f"/api/status-pages/{b_page['slug']}/incidents",
            {"title": "x", "impact": "minor", "message": "x", "componentIds": [a_component]},
            a_component,
        ),
        (
            "PATCH",
            f"/api/status-pages/{b_page['slug']}/incidents/{b_page['incident_id']}",
            {"componentIds": [a_component]},
            a_component,
        ),
    ]
    for method, path, body, named in writes:
        substitute = _absent(named)
        response = await matrix.api.request(method, path, json=body, headers=b.owner.headers)
        absent_body = json.loads(json.dumps(body).replace(named, substitute))
        absent = await matrix.api.request(method, path, json=absent_body, headers=b.owner.headers)
        assert 400 <= response.status_code < 500, (method, path, response.text)
        assert (response.status_code, response.text.replace(named, substitute)) == (
            absent.status_code,
            absent.text,
        )
    listed = await matrix.api.get(f"/api/incidents?monitorId={a_monitor}", headers=b.owner.headers)
    assert listed.status_code == 200 and listed.json()["data"] == []


async def test_an_organizations_figures_count_its_own_only(matrix):
    """Counts name no ids, so the matrix's look for A's ids cannot see them: they must be B's."""
    a, b, api = matrix.a, matrix.b, matrix.api
    for _ in range(3):
        await a.make("incident")  # A's monitors and today's incidents outnumber B's
    totals = {}
    for tenant in (a, b):
        headers = tenant.owner.headers
        monitors = totals[tenant.domain] = len(
            (await api.get("/api/monitors", headers=headers)).json()["data"]
        )
        incidents = (await api.get("/api/incidents", headers=headers)).json()["pagination"]["total"]
        stats = (await api.get("/api/dashboard/stats", headers=headers)).json()["data"]
        assert (stats["totalMonitors"], stats["incidentsToday"]) == (monitors, incidents), tenant.domain
        assert (await api.get("/api/billing", headers=headers)).json()["monitorCount"] == monitors
        portal = await api.post("/api/billing/portal", headers=headers)
        assert portal.status_code == 200 and matrix.revenuecat.requested[-1] == tenant.owner.org_id
        offer = (await api.post("/api/billing/checkout", json={"plan": "PRO"}, headers=headers)).json()
        assert offer["data"]["appUserId"] == tenant.owner.org_id
    assert totals["a.example"] == totals["b.example"] + 3


async def test_a_removed_member_reads_nothing_of_the_organization(matrix):
    a, api = matrix.a, matrix.api
    member = await a.make("member")
    headers = {"Authorization": f"Bearer {member['member_key']}"}
    assert (await api.get("/api/monitors", headers=headers)).status_code == 200
    removed = await api.delete(f"/api/team/{member['member_id']}", headers=a.owner.headers)
    assert removed.status_code == 200, removed.text
    for path in (
        "/api/monitors",
        f"/api/monitors/{a.standing['monitor']['monitor_id']}",
        "/api/organization",
    ):
        response = await api.get(path, headers=headers)
        assert response.status_code == 404 and a.standing["monitor"]["monitor_id"] not in response.text, path
