"""Tenancy and roles across every route, generated from the app's route table (DESIGN.md, "Tenancy
and access"): each route x (no key, a revoked key, another organization's OWNER, a VIEWER, the
OWNER) answers 401 / 401 / 404 / 403 on writes (reads succeed) / success, on real resources of
organization A while organization B has its own. ROUTES holds a row for every route; a route added
without one fails test_every_route_has_a_row. Public routes take no key: the tests of
test_tenancy_public.py named in their rows prove they reveal nothing of another organization.

The OWNER's writes act on resources made for that call alone, so the rows' order does not matter;
the other callers' writes are refused before they change anything.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from control_plane.db import Database
from control_plane.settings import Settings
from tests.conftest import World
from tests.reliability import test_tenancy_public
from tests.reliability.tenancy_support import HOOK_URL, Ids, Matrix, absent, new_slug, open_matrix, replaced

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Row:
    """What one route needs: `target`, the kind of resource that fills its path (made by Tenant.make:
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
    return {"name": "Shop status", "slug": new_slug(), "monitors": [ids["monitor_id"]]}


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
        body=lambda ids: {"name": "Another", "slug": new_slug()}, expect={"stranger": 409, "owner": 409}
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
    **{("GET", path): Row(public=_OPERATOR) for path in test_tenancy_public.OPERATOR_PATHS},
}


@pytest.fixture
async def matrix(world: World, runtime: Runtime, database: Database) -> AsyncIterator[Matrix]:
    async with open_matrix(world, runtime, database) as opened:
        yield opened


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


def test_every_public_row_names_a_test_of_test_tenancy_public():
    module = test_tenancy_public
    named = {row.public for row in ROUTES.values() if row.public}
    assert all(callable(getattr(module, name, None)) for name in named), named


def _fill(path: str, ids: Ids) -> str:
    for name, value in ids.items():
        path = path.replace(f"{{{name}}}", value)
    assert "{" not in path, f"{path}: a path parameter without a value"
    return path


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
            substitutes = {value: absent(value) for value in ids.values()}
            response = await self.send(path, body, headers)
            unknown = await self.send(replaced(path, substitutes), body, headers)
            if self.expect("stranger", response, row.expect.get("stranger", 404)):
                if replaced(response.text, substitutes) != unknown.text:
                    self.fail("stranger", f"404 {response.text} differs from an absent id's {unknown.text}")
            return
        if row.target:  # e.g. the user B invites: its own
            body = row.body({**ids, **(await b.make(row.target))}) if row.body else None
        text = json.dumps(body)
        named = {identifier for identifier in a.identifiers() if identifier in text}
        response = await self.send(path, body, headers)
        if named:
            substitutes = {identifier: absent(identifier) for identifier in named}
            unknown = await self.send(path, json.loads(replaced(text, substitutes)), headers)
            if not 400 <= unknown.status_code < 500 or (
                response.status_code,
                replaced(response.text, substitutes),
            ) != (unknown.status_code, unknown.text):
                self.fail(
                    "stranger",
                    f"a body naming A's {sorted(named)} answered {response.status_code} "
                    f"{_excerpt(response)}; naming nothing, {unknown.status_code} {_excerpt(unknown)}",
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
