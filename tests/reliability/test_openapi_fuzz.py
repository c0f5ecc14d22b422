"""Every endpoint, fuzzed: schemathesis sends what the served OpenAPI document allows (and what it
forbids) to a real `traxo api` on PostgreSQL, with every check it has and two of ours
(schemathesis_run.py), and every answer must be no 5xx, no 422, a documented status, and a body and
headers of the documented schema.

Three identities, one run each, against one server: a VIEWER of organization A (every write a 403),
the OWNER of organization B, whose path parameters still name A's resources (each a documented 404,
and no answer shows one of A's ids), and A's OWNER last (its run deletes things). A holds monitors of
every type, checks with a screenshot, incidents, alert channels, maintenance windows, public and
private status pages with incidents and a subscriber, AI events, an insight and a cost alert, keys and
members; path parameters name them most of the time, so operations reach real resources and not only
their 404s. The stateful phase follows the document's links (openapi.py) from each create to the
reads, updates and deletes of what it made, in chains of up to 40 steps; A's and B's owners must
cover most of the links.

Bounded for CI: a few examples per operation, one seed, no coverage phase. bench/fuzz.py runs the
same configuration longer, with the coverage phase (TRAXO_SCHEMATHESIS_MAX_EXAMPLES,
TRAXO_SCHEMATHESIS_SEED, TRAXO_SCHEMATHESIS_MAX_STEPS, TRAXO_SCHEMATHESIS_COVERAGE).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane import migrate
from control_plane.core.ids import new_id
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import Incident, Role
from control_plane.models.ai import AiInsight
from control_plane.results import ResultIn, record_results
from control_plane.services import accounts, organizations, team
from control_plane.services.monitors import new_heartbeat_token
from control_plane.settings import Plan, async_database_url
from control_plane.status_pages import public, subscribers
from tests.billing_support import PUBLIC_KEY, SECRET_KEY, WEBHOOK_SECRET, FakeRevenueCat
from tests.databases import scratch_database
from tests.factories import monitor_row
from tests.processes import BIN, command_env
from tests.waiting import eventually

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

MAX_EXAMPLES = int(os.environ.get("TRAXO_SCHEMATHESIS_MAX_EXAMPLES", "8"))
SEED = int(os.environ.get("TRAXO_SCHEMATHESIS_SEED", "20250615"))
# Past this a run is hung (a request that never ends), not slow; bench/fuzz.py's runs scale it.
TIMEOUT_SECONDS = float(os.environ.get("TRAXO_SCHEMATHESIS_TIMEOUT", "300"))
# Steps a stateful scenario takes at most: long enough chains reach the operations several links from
# a create (schemathesis's own default left A's owner 10-15 of the document's 49 links; 40 steps cost
# the CI run ~10 s more). bench/fuzz.py --max-steps sets it for a longer run.
MAX_STEPS = int(os.environ.get("TRAXO_SCHEMATHESIS_MAX_STEPS", "40"))
# The coverage phase (every boundary and every negation of each parameter, as A's owner) is
# bench/fuzz.py's: it costs 100 s on a 2-core machine with nothing else running and twice that under
# the suite, more than the other three phases of all three identities together. CI runs the
# examples, fuzzing and stateful phases.
COVERAGE = os.environ.get("TRAXO_SCHEMATHESIS_COVERAGE") == "1"
LINKS_COVERED_AT_LEAST = 35
REPOSITORY = Path(__file__).resolve().parents[2]
# Every check schemathesis has, on: the run fails on any of them.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    # Each operation is sent once without a key and once with a wrong one: the server runs with
    # TRAXO_FAILED_AUTH_PER_MINUTE raised so that those are 401s, not the address's 429s.
    "ignored_auth",
    # schemathesis_run.py's.
    "never_422",
    "foreign_resources_stay_hidden",
)
# Off, with why:
# - object_level_authorization compares identities only under [auth.wfc] with `peers`, whose fixed
#   headers replace every operation's Authorization, the RevenueCat webhook's secret too (that
#   operation would then only ever be a 401). The OWNER-B run asks more of every operation, writes
#   included: A's resources in its path parameters are 404s, and no answer shows one of A's ids.
# - max_response_time takes a limit and is on only with one: two loaded cores time nothing
#   reliably (bench/ measures latency), so none is given.
CHECKS_OFF = ("object_level_authorization",)
# Statuses each check accepts, narrower than schemathesis's defaults: its 422 and 5xx never.
EXPECTED = {
    "not_a_server_error": ["2xx", "3xx", "4xx"],
    "negative_data_rejection": ["400", "401", "403", "404", "405", "409", "413", "415", "429"],
    "positive_data_acceptance": ["2xx", "401", "403", "404", "409", "429"],
    "missing_required_header": ["400", "401", "403"],
}
# Where input the schema allows may still break a rule it cannot say (one field against another, or
# against what exists), a 400 is right for it: positive_data_acceptance takes a 400 there, and only
# there. By operation, the rule.
_LLM_ONLY = "the monitor must be an LLM monitor"
RULES_BEYOND_THE_SCHEMA = {
    "POST /api/monitors": "url and config as the type requires, known regions, the org's channels",
    "PUT /api/monitors/{monitor_id}": "url and config as the (new) type requires, known regions",
    "POST /api/alert-channels": "config's fields as the type requires",
    "PATCH /api/alert-channels/{channel_id}": "config's fields as the type requires",
    "POST /api/maintenance": "endsAt after startsAt, a cron recurrence, an IANA timezone, the org's monitor",
    "PATCH /api/maintenance/{window_id}": "endsAt after startsAt, a cron recurrence, an IANA timezone",
    "POST /api/status-pages": "the organization's monitors, each once (as an id or an object)",
    "PUT /api/status-pages/{slug}": "the organization's monitors, each once (as an id or an object)",
    "POST /api/status-pages/{slug}/verify-domain": "the page must have a custom domain",
    "GET /api/status-pages/{slug}/verify-domain": "the page must have a custom domain",
    "POST /api/status-pages/{slug}/incidents": "componentIds of this page",
    "PATCH /api/status-pages/{slug}/incidents/{incident_id}": "componentIds of this page",
    "POST /status/{slug}/subscribe": "components of this page",
    "GET /api/monitors/{monitor_id}/checks": "from not after to",
    "GET /api/monitors/{monitor_id}/sla": "from before to, at most 400 days apart",
    "DELETE /api/team/{member_id}": "nobody removes their own membership",
    "POST /api/billing/webhook": "no NUL anywhere in the body, fields not read included (stored as sent)",
    "GET /api/monitors/{monitor_id}/ai-usage": _LLM_ONLY,
    "GET /api/monitors/{monitor_id}/ai-events": _LLM_ONLY,
    "GET /api/monitors/{monitor_id}/insights": _LLM_ONLY,
    "PATCH /api/monitors/{monitor_id}/insights/{insight_id}": _LLM_ONLY,
    "GET /api/monitors/{monitor_id}/cost-alert": _LLM_ONLY,
    "PUT /api/monitors/{monitor_id}/cost-alert": _LLM_ONLY,
    "DELETE /api/monitors/{monitor_id}/cost-alert": _LLM_ONLY,
    "POST /api/ai/ingest/{monitorId}": _LLM_ONLY + ", and active",
    "POST /api/ai/otlp/{monitorId}/v1/traces": _LLM_ONLY + ", and active",
}
# A batch of AI events answers each event in its place (docs/ai-monitoring.md): one that breaks the
# schema is a 400 inside the batch's 200, so that the others are stored. negative_data_rejection
# takes that 200 for this operation alone.
ANSWERED_PER_EVENT = "POST /api/ai/ingest/{monitorId}"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
HOOK_URL = "http://127.0.0.1:9/traxo"  # nothing listens: a test delivery fails at once


@dataclass
class Organization:
    """What the server's organization A holds, by the path parameters that name it."""

    owner_key: str
    viewer_key: str
    monitors: list[str]
    disposable_monitors: list[str]  # for DELETE, so the others stay
    llm_monitors: list[str]
    checks: list[str]
    screenshot: tuple[str, str]  # a BROWSER monitor's check that has one
    incidents: list[str]
    members: list[str]  # the owner's (a 403 to remove) and others
    spare_keys: list[str]  # never a key a run authenticates with
    invitable_emails: list[str]
    heartbeat_tokens: list[str]
    badges: list[str]  # a monitor with a public badge, and one without (its 404)
    insights: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    windows: list[str] = field(default_factory=list)
    slugs: list[str] = field(default_factory=list)
    private_slugs: list[str] = field(default_factory=list)
    page_incidents: list[str] = field(default_factory=list)
    subscribers: list[str] = field(default_factory=list)

    def identifiers(self) -> list[str]:
        """What names A's resources in a path or an answer (slugs are words: paths only)."""
        return [
            *self.monitors,
            *self.disposable_monitors,
            *self.checks,
            *self.incidents,
            *self.members,
            *self.spare_keys,
            *self.insights,
            *self.channels,
            *self.windows,
            *self.page_incidents,
            *self.subscribers,
        ]


@dataclass
class Seeded:
    a: Organization
    b_owner_key: str


async def _user(session: Any, email: str, name: str) -> tuple[Any, str]:
    return await accounts.create_user(session, email=email, name=name, now=utcnow())


async def seed_database(url: str) -> Seeded:
    """What the API cannot make: accounts, agents' checks, the engine's incidents."""
    db = Database(async_database_url(url))
    try:
        async with db.session() as session:
            owner, owner_key = await _user(session, "owner@a.example", "Owner A")
            org = await organizations.create_organization(
                session, user_id=owner.id, name="A", slug="org-a", plan=Plan.ENTERPRISE, now=utcnow()
            )
            spare_keys = [
                (await accounts.create_key(session, owner.id, f"Spare {index}", now=utcnow()))[0].id
                for index in range(3)
            ]
            members = [membership.id for membership, _ in await team.list_members(session, org.id)]
            keys = {}
            for name, role in (("admin", Role.ADMIN), ("viewer", Role.VIEWER)):
                user, keys[name] = await _user(session, f"{name}@a.example", name)
                membership, _ = await team.invite_member(
                    session, org.id, email=user.email, role=role, now=utcnow()
                )
                members.append(membership.id)
            invitable = []
            for index in range(3):
                user, _ = await _user(session, f"newcomer{index}@a.example", f"Newcomer {index}")
                invitable.append(user.email)
            owner_b, b_key = await _user(session, "owner@b.example", "Owner B")
            await organizations.create_organization(
                session, user_id=owner_b.id, name="B", slug="org-b", plan=Plan.ENTERPRISE, now=utcnow()
            )

        now = datetime.now(UTC)
        tokens = [new_heartbeat_token(), new_heartbeat_token()]
        rows = [
            monitor_row(org.id, name="API", regions=["us-east-1", "eu-west-1"], created_at=now),
            monitor_row(org.id, name="Cron", type="HEARTBEAT", url=None, heartbeat_token=tokens[0]),
            monitor_row(org.id, name="LLM app", type="LLM", url=None),
            monitor_row(org.id, name="Checkout flow", type="BROWSER", url="https://example.com/"),
            monitor_row(
                org.id, name="Database", type="TCP", url="tcp://db.example.com:5432", is_active=False
            ),
            monitor_row(org.id, name="Nightly", type="HEARTBEAT", url=None, heartbeat_token=tokens[1]),
            monitor_row(org.id, name="Support bot", type="LLM", url=None),
            monitor_row(org.id, name="Public API", config={"publicBadge": True}),
        ]
        disposable = [monitor_row(org.id, name=f"Disposable {index}") for index in range(3)]
        async with db.session() as session:
            session.add_all([*rows, *disposable])
            await session.commit()
        http_monitor, browser_monitor, llm_monitors = rows[0], rows[3], [rows[2].id, rows[6].id]

        results = [
            ResultIn(
                id=new_id("chk"),
                monitor_id=http_monitor.id,
                region=("us-east-1", "eu-west-1")[index % 2],
                status="UP" if index % 5 else "DOWN",
                checked_at=now - timedelta(minutes=5 * index),
                response_time=80.0 + index,
                status_code=200 if index % 5 else 503,
                error_kind=None if index % 5 else "http_status",
                error_message=None if index % 5 else "HTTP 503 (expected 200)",
                dns=5.0,
                tcp=7.5,
                tls=12.25,
                ttfb=40.0 + index,
                download=3.0,
                total=80.0 + index,
                size=2048,
            )
            for index in range(30)
        ]
        screenshot = ResultIn(
            id=new_id("chk"),
            monitor_id=browser_monitor.id,
            region="us-east-1",
            status="DOWN",
            checked_at=now,
            response_time=1500.0,
            error_kind="assertion",
            error_message="expect_text: 'Pay' not found",
            screenshot_png=PNG,
        )
        async with db.session() as session:
            await record_results(session, [*results, screenshot])
        incidents = [
            Incident(
                id=new_id("inc"),
                org_id=org.id,
                monitor_id=http_monitor.id,
                started_at=now - timedelta(days=1),
                resolved_at=now - timedelta(days=1) + timedelta(minutes=15),
                cause="Connection timeout",
            ),
            Incident(
                id=new_id("inc"),
                org_id=org.id,
                monitor_id=http_monitor.id,
                started_at=now - timedelta(minutes=3),
                cause="HTTP 503 (expected 200)",
            ),
        ]
        insight = AiInsight(
            id=new_id("ins"),
            org_id=org.id,
            monitor_id=llm_monitors[0],
            type="model_downgrade",
            severity="warning",
            title="Use a smaller model",
            description="gpt-4o-mini answers these prompts as well",
            savings=1.5,
            details={},
        )
        async with db.session() as session:
            session.add_all([*incidents, insight])
            await session.commit()
        a = Organization(
            owner_key=owner_key,
            viewer_key=keys["viewer"],
            monitors=[row.id for row in rows],
            disposable_monitors=[row.id for row in disposable],
            llm_monitors=llm_monitors,
            checks=[screenshot.id, results[0].id, results[5].id],
            screenshot=(browser_monitor.id, screenshot.id),
            incidents=[incident.id for incident in incidents],
            members=members,
            spare_keys=spare_keys,
            invitable_emails=invitable,
            heartbeat_tokens=tokens,
            badges=[rows[7].id, http_monitor.id],
            insights=[insight.id],
        )
        return Seeded(a, b_key)
    finally:
        await db.dispose()


async def seed_through_api(base_url: str, url: str, a: Organization) -> None:
    """What A's owner makes through the API, as a user would: channels, windows, pages and their
    incidents, a cost alert, AI events; and a page's subscriber (a mailed confirmation otherwise)."""
    headers = {"Authorization": f"Bearer {a.owner_key}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as api:

        async def made(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = await api.request(method, path, json=body, headers=headers)
            assert response.status_code in (200, 201), (
                f"{method} {path}: {response.status_code} {response.text}"
            )
            data: dict[str, Any] = response.json()["data"]
            return data

        for index in range(3):
            body = {"name": f"Ops {index}", "type": "WEBHOOK", "config": {"url": HOOK_URL}}
            a.channels.append((await made("POST", "/api/alert-channels", body))["id"])
        for index in range(3):
            body = {
                "title": f"Patching {index}",
                "startsAt": "2030-01-01T00:00:00.000Z",
                "endsAt": "2030-01-01T02:00:00.000Z",
                **({"monitorId": a.monitors[0]} if index == 0 else {}),
            }
            a.windows.append((await made("POST", "/api/maintenance", body))["id"])
        for index, is_public in enumerate((True, False, True, True)):
            slug = f"fuzz-page-{index}-{new_id('x')[2:10].lower()}"
            body = {
                "name": f"Status {index}",
                "slug": slug,
                "monitors": a.monitors[:2],
                "isPublic": is_public,
            }
            if index == 0:
                body["customDomain"] = "status.a.example"
            page = await made("POST", "/api/status-pages", body)
            a.slugs.append(slug)
            if not is_public:
                a.private_slugs.append(slug)
            incident = {
                "title": "Errors",
                "impact": "major",
                "message": "Looking into it",
                "componentIds": [page["components"][0]["id"]],
            }
            a.page_incidents.append(
                (await made("POST", f"/api/status-pages/{slug}/incidents", incident))["id"]
            )
        for monitor_id in a.llm_monitors:
            budget = {"dailyBudget": 5.0, "alertEmails": "owner@a.example"}
            await made("PUT", f"/api/monitors/{monitor_id}/cost-alert", budget)
            event = {
                "provider": "openai",
                "model": "gpt-4o",
                "promptTokens": 150,
                "completionTokens": 80,
                "latencyMs": 900,
            }
            response = await api.post(f"/api/ai/ingest/{monitor_id}", json=event)  # no key: the id routes it
            assert response.status_code == 200, response.text

        db = Database(async_database_url(url))
        try:
            async with db.session() as session:
                page_row = await public.page_by_slug(session, a.slugs[0])
                assert page_row is not None
                for index in range(2):
                    await subscribers.subscribe(session, page_row, f"reader{index}@a.example", [], utcnow())
                await session.commit()
        finally:
            await db.dispose()
        listed = await api.get(f"/api/status-pages/{a.slugs[0]}/subscribers", headers=headers)
        assert listed.status_code == 200, listed.text
        a.subscribers.extend(item["id"] for item in listed.json()["data"])


@pytest.fixture(scope="module")
def fuzz_database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of the server's own, of the suite's kind (this module runs on PostgreSQL)."""
    with scratch_database(database_url, tmp_path_factory.mktemp("fuzz"), "traxo_fuzz") as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="module")
async def revenuecat() -> AsyncIterator[FakeRevenueCat]:
    fake = FakeRevenueCat()
    await fake.start()
    yield fake
    await fake.stop()


@dataclass(frozen=True)
class LiveApi:
    base_url: str
    seeded: Seeded
    log_path: Path


@pytest.fixture(scope="module")
async def live_api(
    fuzz_database: str, revenuecat: FakeRevenueCat, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveApi]:
    seeded = await seed_database(fuzz_database)
    directory = tmp_path_factory.mktemp("fuzz_api")
    log_path = directory / "api.log"
    env = command_env(
        fuzz_database,
        TRAXO_LOG_LEVEL="info",
        TRAXO_REGIONS="us-east-1,eu-west-1",
        TRAXO_REVENUECAT_API_URL=revenuecat.url,
        TRAXO_REVENUECAT_SECRET_KEY=SECRET_KEY,
        TRAXO_REVENUECAT_PUBLIC_KEY=PUBLIC_KEY,
        TRAXO_REVENUECAT_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TRAXO_REVENUECAT_TIMEOUT_SECONDS="2",
        TRAXO_ALERTS_ALLOW_PRIVATE_URLS="true",  # the seeded channels' hook is on loopback
        # Budgets sized for a fuzzer, not for people: the plan's (5,000 requests a minute), and the
        # address's for failed authentications, which ignored_auth spends twice per operation (and
        # unknown badges and feeds once each); 429s stay documented answers all the same.
        TRAXO_RATE_LIMIT_MULTIPLIER="100",
        TRAXO_FAILED_AUTH_PER_MINUTE="1000000",
        TRAXO_HEARTBEAT_PINGS_PER_MINUTE="100000",
    )
    args = ["api", "--host", "127.0.0.1", "--port", "0", "--no-workers", "--no-grpc", "--no-migrate"]
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            str(BIN / "traxo"), *args, env=env, cwd=directory, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    try:

        def listening_port() -> int | None:
            text = log_path.read_text(errors="replace")
            if process.returncode is not None:
                raise AssertionError(f"traxo api exited with {process.returncode}:\n{text}")
            match = LISTENING.search(text)
            return int(match[1]) if match else None

        port = await eventually(listening_port, within=60, what="traxo api to listen")
        base_url = f"http://127.0.0.1:{port}"

        async def ready() -> bool:
            async with httpx.AsyncClient() as client:
                try:
                    return (await client.get(f"{base_url}/readyz", timeout=1)).status_code == 200
                except httpx.HTTPError:
                    return False

        await eventually(ready, within=30, what="traxo api to answer /readyz")
        await seed_through_api(base_url, fuzz_database, seeded.a)
        yield LiveApi(base_url, seeded, log_path)
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError("traxo api did not stop within 10 s of SIGTERM") from None


def _toml(value: object) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML's too."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@dataclass(frozen=True)
class Identity:
    name: str
    key: str
    max_examples: int
    coverage: bool  # the coverage phase: every boundary and every negation of each parameter
    scenarios: int  # the stateful phase's: chains of linked operations


def identities(seeded: Seeded) -> dict[str, Identity]:
    # A's owner gets the whole budget and every phase; the others mostly meet the same refusal
    # (403, 404) before any input is read, so fewer examples find what they can. Scenarios are
    # cheap (a few seconds for dozens) and most die at a create that broke a rule, so they are more:
    # B's own creates chain too, a VIEWER's never do.
    few = max(2, MAX_EXAMPLES // 4)
    return {
        "viewer_a": Identity("viewer_a", seeded.a.viewer_key, few, coverage=False, scenarios=few),
        "owner_b": Identity("owner_b", seeded.b_owner_key, few, coverage=False, scenarios=2 * MAX_EXAMPLES),
        "owner_a": Identity(
            "owner_a", seeded.a.owner_key, MAX_EXAMPLES, coverage=COVERAGE, scenarios=4 * MAX_EXAMPLES
        ),
    }


def schemathesis_config(a: Organization, identity: Identity) -> str:
    dictionaries = {
        "monitors": a.monitors,
        "disposable_monitors": a.disposable_monitors,
        "llm_monitors": a.llm_monitors,
        "checks": a.checks,
        "incidents": a.incidents,
        "members": a.members,
        "spare_keys": a.spare_keys,
        "emails": a.invitable_emails,
        "screenshot_monitor": [a.screenshot[0]],
        "screenshot_check": [a.screenshot[1]],
        "heartbeat_tokens": a.heartbeat_tokens,
        "badges": a.badges,
        "insights": a.insights,
        "channels": a.channels,
        "disposable_channels": a.channels[1:],
        "windows": a.windows,
        "disposable_windows": a.windows[1:],
        "slugs": a.slugs,
        "disposable_slugs": a.slugs[2:],
        "page_incidents": a.page_incidents,
        "subscribers": a.subscribers,
    }
    # Mostly the seeded resources; now and then anything the schema allows (their 404s).
    parameters = {
        "path.monitor_id": {"dictionary": "monitors", "probability": 0.8},
        "path.monitorId": {"dictionary": "monitors", "probability": 0.8},
        "path.check_id": {"dictionary": "checks", "probability": 0.8},
        "path.incident_id": {"dictionary": "incidents", "probability": 0.8},
        "path.member_id": {"dictionary": "members", "probability": 0.8},
        "path.token": {"dictionary": "heartbeat_tokens", "probability": 0.8},
        "path.insight_id": {"dictionary": "insights", "probability": 0.8},
        "path.channel_id": {"dictionary": "channels", "probability": 0.8},
        "path.window_id": {"dictionary": "windows", "probability": 0.8},
        "path.slug": {"dictionary": "slugs", "probability": 0.8},
        "path.subscriber_id": {"dictionary": "subscribers", "probability": 0.8},
        "body.email": {"dictionary": "emails", "probability": 0.5},
        "body.monitorId": {"dictionary": "monitors", "probability": 0.5},
    }
    llm = {"path.monitor_id": {"dictionary": "llm_monitors", "probability": 0.8}}
    badge = {"path.monitorId": {"dictionary": "badges", "probability": 0.8}}
    page_incident = {
        "path.slug": {"dictionary": "slugs", "probability": 0.8},
        "path.incident_id": {"dictionary": "page_incidents", "probability": 0.8},
    }
    operations: dict[str, dict[str, Any]] = {
        "DELETE /api/monitors/{monitor_id}": {
            "path.monitor_id": {"dictionary": "disposable_monitors", "probability": 0.8}
        },
        "GET /api/monitors/{monitor_id}/checks/{check_id}/screenshot": {
            "path.monitor_id": {"dictionary": "screenshot_monitor", "probability": 0.8},
            "path.check_id": {"dictionary": "screenshot_check", "probability": 0.8},
        },
        # Only ever a spare key: the fuzzing phase draws ids from earlier answers too, and the run's
        # own key, listed by GET /api/api-keys, revoked would make the rest of the run 401s.
        "DELETE /api/api-keys/{key_id}": {"path.key_id": {"dictionary": "spare_keys", "probability": 1.0}},
        "DELETE /api/alert-channels/{channel_id}": {
            "path.channel_id": {"dictionary": "disposable_channels", "probability": 0.8}
        },
        "DELETE /api/maintenance/{window_id}": {
            "path.window_id": {"dictionary": "disposable_windows", "probability": 0.8}
        },
        "DELETE /api/status-pages/{slug}": {
            "path.slug": {"dictionary": "disposable_slugs", "probability": 0.8}
        },
        **{
            f"{method} /api/status-pages/{{slug}}/incidents/{{incident_id}}{suffix}": page_incident
            for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/updates"))
        },
        **{
            f"{method} /api/monitors/{{monitor_id}}/{suffix}": llm
            for method, suffix in (
                ("GET", "ai-usage"),
                ("GET", "ai-events"),
                ("GET", "insights"),
                ("GET", "cost-alert"),
                ("PUT", "cost-alert"),
                ("DELETE", "cost-alert"),
            )
        },
        "PATCH /api/monitors/{monitor_id}/insights/{insight_id}": {
            **llm,
            "path.insight_id": {"dictionary": "insights", "probability": 0.8},
        },
        # A badge's monitor, mostly the one that opted in: the others' badges are all 404s.
        **{
            f"GET /badge/{{monitorId}}/{name}": badge for name in ("status.svg", "uptime.svg", "shields.json")
        },
        **{
            f"POST {path}": {"path.monitorId": {"dictionary": "llm_monitors", "probability": 0.8}}
            for path in ("/api/ai/ingest/{monitorId}", "/api/ai/otlp/{monitorId}/v1/traces")
        },
    }
    lines = [
        f"seed = {SEED}",
        "workers = 1",  # the server needs the other core
        "color = false",
        "[generation]",
        f"max-examples = {identity.max_examples}",
        'database = "none"',
        # The key is configured; ignored_auth sends each operation without it and with a wrong one.
        "with-security-parameters = false",
        "[phases.coverage]",
        f"enabled = {_toml(identity.coverage)}",
        # Scenarios follow the document's own links (openapi.py) from each create to the reads,
        # updates and deletes of what it made. Inferred ones (500 and more) left ours a few scenarios.
        "[phases.stateful]",
        "inference.algorithms = []",
        f"generation.max-examples = {identity.scenarios}",
        f"max-steps = {MAX_STEPS}",
        'generation.mode = "positive"',  # a chain starts at a create that succeeded; the other phases negate
        "[checks]",
        *(f"{check}.enabled = true" for check in CHECKS),
        *(f"{check}.enabled = false" for check in CHECKS_OFF),
        *(f"{check}.expected-statuses = {_toml(statuses)}" for check, statuses in EXPECTED.items()),
        "[auth.openapi.bearerAuth]",
        f"bearer = {_toml(identity.key)}",
        "[auth.openapi.revenueCatWebhook]",
        f"api_key = {_toml(WEBHOOK_SECRET)}",
        "[dictionaries]",
        *(f"{name} = {_toml({'values': values})}" for name, values in dictionaries.items() if values),
        "[parameters]",
        *(f"{_toml(name)} = {_toml(binding)}" for name, binding in parameters.items()),
    ]
    for name in sorted(operations.keys() | RULES_BEYOND_THE_SCHEMA.keys() | {ANSWERED_PER_EVENT}):
        lines += ["[[operations]]", f"include-name = {_toml(name)}"]
        if name in operations:
            lines.append(f"parameters = {_toml(operations[name])}")
        checks = {}
        if name in RULES_BEYOND_THE_SCHEMA:
            checks["positive_data_acceptance"] = {
                "expected-statuses": [*EXPECTED["positive_data_acceptance"], "400"]
            }
        if name == ANSWERED_PER_EVENT:
            checks["negative_data_rejection"] = {
                "expected-statuses": [*EXPECTED["negative_data_rejection"], "200"]
            }
        if checks:
            lines.append(f"checks = {_toml(checks)}")
    return "\n".join(lines) + "\n"


async def run_schemathesis(api: LiveApi, identity: Identity, directory: Path) -> tuple[int, str]:
    config = directory / f"schemathesis-{identity.name}.toml"
    config.write_text(schemathesis_config(api.seeded.a, identity))
    a = api.seeded.a
    foreign = {"ids": a.identifiers(), "privateSlugs": a.private_slugs} if identity.name == "owner_b" else {}
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "PYTHONPATH": str(REPOSITORY),
        "TRAXO_FUZZ_FOREIGN": json.dumps(foreign),
    }
    process = await asyncio.create_subprocess_exec(
        str(BIN / "python"),
        "-m",
        "tests.reliability.schemathesis_run",
        "--config-file",
        str(config),
        "run",
        f"{api.base_url}/api/openapi.json",
        cwd=directory,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(
            f"schemathesis as {identity.name} did not finish within {TIMEOUT_SECONDS} s"
        ) from None
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


# A's owner last: its run deletes what the others' dictionaries name.
@pytest.mark.parametrize("identity_name", ["viewer_a", "owner_b", "owner_a"])
async def test_the_server_answers_as_its_openapi_document_says(
    live_api: LiveApi, identity_name: str, tmp_path: Path
) -> None:
    identity = identities(live_api.seeded)[identity_name]
    started = time.monotonic()
    returncode, report = await run_schemathesis(live_api, identity, tmp_path)
    print(
        f"schemathesis as {identity.name} took {time.monotonic() - started:.1f} s\n{report}"
    )  # -s or failure
    server_log = "\n".join(live_api.log_path.read_text(errors="replace").splitlines()[-100:])
    assert returncode == 0, (
        f"schemathesis as {identity.name} found problems:\n{report}\n\nserver log (end):\n{server_log}"
    )
    if identity.name != "viewer_a":  # a VIEWER creates nothing: no chain starts
        # The stateful phase is worth its time only if its chains get somewhere: 40-42 of the 49
        # links with CI's settings (it was 0-15 before the steps were raised).
        covered = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", report)
        assert covered is not None, report
        assert int(covered.group(1)) >= LINKS_COVERED_AT_LEAST, (
            f"the stateful phase as {identity.name} covered {covered.group(1)} of {covered.group(2)} links"
        )


# What the fuzzing found, each pinned on its own (they failed before their fixes).


async def _own_monitor(live_api: LiveApi, body: dict[str, object]) -> dict[str, Any]:
    """A monitor of A's made for one pinned test: a fuzz run before it may have paused, changed
    or deleted any of the seeded ones (which run, and what it does, depends on the worker)."""
    headers = {"Authorization": f"Bearer {live_api.seeded.a.owner_key}"}
    async with httpx.AsyncClient(base_url=live_api.base_url, timeout=30, headers=headers) as api:
        response = await api.post("/api/monitors", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


async def test_a_heartbeat_log_with_a_nul_byte_is_kept(live_api: LiveApi) -> None:
    """PostgreSQL's JSON holds no NUL: a binary log (a GIF) was a 500, the ping lost."""
    heartbeat = await _own_monitor(live_api, {"name": "pinned: NUL log", "type": "HEARTBEAT"})
    token = str(heartbeat["heartbeatUrl"]).rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=live_api.base_url, timeout=30) as api:
        response = await api.post(f"/api/heartbeat/{token}", content=b"GIF87a\x01\x00\x00;")
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}


@pytest.mark.parametrize("spans", [["not a span"], [{}, "not a span"]])
async def test_otlp_json_whose_resource_spans_are_not_objects_is_a_400(
    live_api: LiveApi, spans: object
) -> None:
    """protobuf's JSON parser read a string where a ResourceSpans goes as an empty one: a 200."""
    monitor_id = (await _own_monitor(live_api, {"name": "pinned: OTLP", "type": "LLM"}))["id"]
    async with httpx.AsyncClient(base_url=live_api.base_url, timeout=30) as api:
        response = await api.post(f"/api/ai/otlp/{monitor_id}/v1/traces", json={"resourceSpans": spans})
    assert response.status_code == 400, response.text
    assert "not an OTLP/JSON ExportTraceServiceRequest" in response.json()["error"]


async def test_otlp_json_with_null_resource_spans_is_an_empty_export_as_documented(live_api: LiveApi) -> None:
    """proto3's JSON reads null as the field's default (no spans): the document said array only."""
    monitor_id = (await _own_monitor(live_api, {"name": "pinned: OTLP", "type": "LLM"}))["id"]
    async with httpx.AsyncClient(base_url=live_api.base_url, timeout=30) as api:
        response = await api.post(f"/api/ai/otlp/{monitor_id}/v1/traces", json={"resourceSpans": None})
        document = (await api.get("/api/openapi.json")).json()
    assert (response.status_code, response.json()) == (200, {})
    body = document["paths"]["/api/ai/otlp/{monitorId}/v1/traces"]["post"]["requestBody"]
    assert "null" in body["content"]["application/json"]["schema"]["properties"]["resourceSpans"]["type"]
