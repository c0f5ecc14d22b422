"""What public routes (no key) and the edges between two organizations reveal: a heartbeat token,
an LLM monitor's id, a page's slug or custom domain, a badge's monitor id, a subscriber's mailed
links, the billing webhook's app user id each reach their own organization only, and anything else
answers as an id that names nothing. The matrix of test_tenancy_matrix.py names these tests in its
rows of public routes."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import update

from control_plane.api.deps import Runtime
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models.status_pages import StatusPage
from tests.ai.otlp_support import CHAT, export, span
from tests.billing_support import WEBHOOK_SECRET, webhook_event
from tests.conftest import World
from tests.reliability.tenancy_support import Matrix, Tenant, absent, new_slug, open_matrix, same_as_absent

OPERATOR_PATHS = (
    "/api/openapi.json",
    "/api/docs",
    "/api/docs/static/{asset}",
    "/api/docs/oauth2-redirect",
    "/api/redoc",
    "/metrics",
    "/healthz",
    "/readyz",
)
_UPDATE = {"status": "identified", "message": "A bad deploy; rolling back."}


@pytest.fixture
async def matrix(world: World, runtime: Runtime, database: Database) -> AsyncIterator[Matrix]:
    async with open_matrix(world, runtime, database) as opened:
        yield opened


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
                await same_as_absent(
                    matrix.api, method, f"/api/heartbeat/{other}{suffix}", {other: absent(other)}
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
        substitutes = {other: absent(other)}
        await same_as_absent(matrix.api, "POST", f"/api/ai/ingest/{other}", substitutes, json=event)
        await same_as_absent(
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
    # The organization-wide windows to come are its own organization's.
    assert [w["title"] for w in view.json()["data"]["maintenance"]] == ["Patching a.example"]
    assert not {i for i in b.identifiers() if i in view.text}
    html = await api.get(f"/status/{page['slug']}")
    assert html.status_code == 200 and "Shop of a.example" in html.text
    assert not {i for i in b.identifiers() if i in html.text}
    # A private page is an unknown page to visitors, in every form.
    for path in ("/status/{}", "/status/{}/feed.rss", "/status/{}/feed.atom", "/api/status-pages/{}"):
        await matrix.runtime.rate_limiter.reset()
        await same_as_absent(api, "GET", path.format(private["slug"]), {private["slug"]: new_slug()})
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
        unknown = await api.get("/", headers={"Host": host})
        assert (
            unknown.status_code == 404
            and "Shop of" not in unknown.text
            and private["slug"] not in unknown.text
        )


async def test_badges_answer_for_opted_in_monitors_only(matrix):
    a, b, api = matrix.a, matrix.b, matrix.api
    opted = {"name": "Badge of a.example", "config": {"publicBadge": True}}
    a_badge = (await a.make_monitor(**opted))["monitor_id"]
    b_badge = (await b.make_monitor(name="Badge of b.example", config={"publicBadge": True}))["monitor_id"]
    for badge in ("status.svg", "uptime.svg", "shields.json"):
        await matrix.runtime.rate_limiter.reset()
        shown = await api.get(f"/badge/{a_badge}/{badge}")
        assert shown.status_code == 200, shown.text
        assert "b.example" not in shown.text and b_badge not in shown.text
        # A monitor that did not opt in, and a heartbeat-less token, answer as no monitor at all.
        not_opted = a.standing["monitor"]["monitor_id"]
        await same_as_absent(api, "GET", f"/badge/{not_opted}/{badge}", {not_opted: absent(not_opted)})
        channel = a.standing["channel"]["channel_id"]
        await same_as_absent(api, "GET", f"/badge/{channel}/{badge}", {channel: absent(channel)})


async def test_subscriptions_reach_their_own_page_only(matrix):
    a, b, api = matrix.a, matrix.b, matrix.api
    page, private = a.standing["subscriber"], a.standing["private_page"]
    b_page = b.standing["subscriber"]
    await same_as_absent(
        api,
        "POST",
        f"/status/{private['slug']}/subscribe",
        {private["slug"]: new_slug()},
        json={"email": "x@c.example"},
    )
    await matrix.runtime.rate_limiter.reset()
    b_component = b_page["component_id"]
    await same_as_absent(
        api,
        "POST",
        f"/status/{page['slug']}/subscribe",
        {b_component: absent(b_component)},
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
            await same_as_absent(api, method, path, {token: secrets.token_urlsafe(24)})
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
    paths = OPERATOR_PATHS
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
        "/api/organization", json={"name": "Gamma", "slug": new_slug()}, headers=headers
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
        response = await same_as_absent(
            matrix.api, method, path, {child: absent(child)}, json=body, headers=b.owner.headers
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
        substitute = absent(named)
        response = await matrix.api.request(method, path, json=body, headers=b.owner.headers)
        unknown_body = json.loads(json.dumps(body).replace(named, substitute))
        unknown = await matrix.api.request(method, path, json=unknown_body, headers=b.owner.headers)
        assert 400 <= response.status_code < 500, (method, path, response.text)
        assert (response.status_code, response.text.replace(named, substitute)) == (
            unknown.status_code,
            unknown.text,
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
