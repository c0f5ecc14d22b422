"""Item 8: the public routes have budgets, so that none can flood a tenant or the database: each
family here is driven past its budget to a 429 with Retry-After, and another address (or another
organization) is shown to keep its own. Quick: TRAXO_RATE_LIMIT_MULTIPLIER scales the public reads'
budget down (ratelimit.PUBLIC_READS_PER_MINUTE).

Held elsewhere: subscribing per address and per page (tests/status_pages/test_subscribers.py),
pings per heartbeat token (tests/test_heartbeats.py::test_pings_are_rate_limited_per_token), unknown
badges and feeds (tests/status_pages/test_badges.py), the billing webhook's wrong secrets
(tests/test_billing_webhook.py), /metrics' wrong tokens (tests/observability/test_metrics_access.py);
see README.md."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from control_plane.api.deps import Runtime
from control_plane.api.ratelimit import PUBLIC_READS_PER_MINUTE
from tests.ai.support import MINIMAL_EVENT, insert_llm_monitor
from tests.conftest import World
from tests.monitor_tools import create_monitor
from tests.security.support import client_with
from tests.status_pages.support import create_page

MULTIPLIER = 0.005
BUDGET = round(PUBLIC_READS_PER_MINUTE * MULTIPLIER)  # 6 a minute per address
FAILED_AUTH_BUDGET = 60  # deps.py: per address, whichever secret it guesses

Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def assert_limited(response: httpx.Response, what: str, window: int = 60) -> None:
    """A 429 whose Retry-After is within the budget's `window` (seconds)."""
    assert response.status_code == 429, (what, response.status_code, response.text[:300])
    assert 1 <= int(response.headers["retry-after"]) <= window, response.headers


async def flood(runtime: Runtime, address: str, send: Send, budget: int, what: str) -> None:
    """`budget` requests from `address` are answered; the next is a 429 with Retry-After."""
    async with client_with(runtime, address=address, rate_limit_multiplier=MULTIPLIER) as client:
        for number in range(budget):
            answer = await send(client)
            assert answer.status_code != 429, (what, number, answer.text[:200])
        assert_limited(await send(client), what)


@pytest.fixture
async def public_world(runtime: Runtime, world: World) -> dict[str, str]:
    """A public page with a component, and a monitor with a public badge: paths to read."""
    async with client_with(runtime) as api:
        monitor = await create_monitor(api, world.alice, name="Shop", config={"publicBadge": True})
        await create_page(api, world.alice, slug="shop", monitors=[monitor["id"]])
    return {"monitor": monitor["id"], "slug": "shop"}


PUBLIC_READS = {
    "status page HTML": "/status/{slug}",
    "status page HTML, unknown": "/status/nope",
    "status page JSON": "/api/status-pages/{slug}",
    "RSS feed": "/status/{slug}/feed.rss",
    "Atom feed": "/status/{slug}/feed.atom",
    "status badge": "/badge/{monitor}/status.svg",
    "uptime badge": "/badge/{monitor}/uptime.svg",
    "shields endpoint": "/badge/{monitor}/shields.json",
    "custom domain root": "/",
    "confirmation link": "/status/{slug}/subscribe/confirm?token=nope",
    "unsubscribe link": "/status/{slug}/unsubscribe?token=nope",
}


@pytest.mark.parametrize("what", PUBLIC_READS)
async def test_public_reads_are_limited_per_address(
    runtime: Runtime, public_world: dict[str, str], what: str
) -> None:
    """With a query string each request reaches the route (none is replayed): the address's
    public reads run out, and another address still reads."""
    path = PUBLIC_READS[what].format(**public_world)
    joined = "&" if "?" in path else "?"
    counter = iter(range(1_000))

    async def read(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(f"{path}{joined}n={next(counter)}", headers={"Host": "status.example.com"})

    await flood(runtime, "198.51.100.7", read, BUDGET, what)
    async with client_with(runtime, address="198.51.100.8", rate_limit_multiplier=MULTIPLIER) as other:
        answer = await read(other)
    assert answer.status_code != 429, answer.text[:200]
    if what in ("status page HTML", "status page JSON", "status badge", "RSS feed"):
        assert answer.status_code == 200


async def test_the_one_click_unsubscribe_is_limited_as_a_page(
    runtime: Runtime, public_world: dict[str, str]
) -> None:
    async def unsubscribe(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/status/shop/unsubscribe?token=nope")

    await flood(runtime, "198.51.100.9", unsubscribe, BUDGET, "one-click unsubscribe")
    async with client_with(runtime, address="198.51.100.9", rate_limit_multiplier=MULTIPLIER) as client:
        refused = await unsubscribe(client)
    assert refused.headers["content-type"].startswith("text/html")  # a person's mail client, a page
    assert "Rate limit exceeded" in refused.text


async def test_guessing_heartbeat_tokens_spends_the_address_s_budget(runtime: Runtime, world: World) -> None:
    """Every guess had a per-token budget of its own, so guessing was unlimited; now unknown tokens
    spend the address's failed authentications. A real token still pings, from there too."""
    async with client_with(runtime) as api:
        created = await api.post(
            "/api/monitors",
            json={"name": "Nightly", "type": "HEARTBEAT", "interval": 3600},
            headers=world.alice.headers,
        )
    token = created.json()["data"]["heartbeatUrl"].rstrip("/").rsplit("/", 1)[-1]
    guesses = iter(range(1_000))

    async def guess(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(f"/api/heartbeat/hb_guess{next(guesses)}")

    await flood(runtime, "198.51.100.20", guess, FAILED_AUTH_BUDGET, "heartbeat guesses")
    async with client_with(runtime, address="198.51.100.20") as same:
        assert (await same.get(f"/api/heartbeat/{token}")).status_code == 200
    async with client_with(runtime, address="198.51.100.21") as other:
        assert (await guess(other)).status_code == 404


async def test_an_ingest_flood_spends_its_own_organization_s_day_only(
    runtime: Runtime, world: World, database
) -> None:
    """The AI ingest's budget is the organization's events a day (its plan's; FREE: 1,000): a
    flood through one monitor id is refused with 429 and Retry-After once it is spent, and
    another organization's monitor, from the same address, is unaffected."""
    flooded = await insert_llm_monitor(database, world.org_a)
    other = await insert_llm_monitor(database, world.org_b)
    event = MINIMAL_EVENT
    async with client_with(runtime, address="198.51.100.30") as client:
        batch = await client.post(f"/api/ai/ingest/{flooded.id}", json={"events": [event] * 1000})
        assert batch.status_code == 200, batch.text[:300]
        refused = await client.post(f"/api/ai/ingest/{flooded.id}", json=event)
        assert_limited(refused, "ingest", window=24 * 3600)  # until the next UTC midnight
        answered = await client.post(f"/api/ai/ingest/{other.id}", json=event)
    assert answered.status_code == 200, answered.text
    assert answered.json()["data"]["dailyEventsUsed"] == 1


async def test_a_badge_flood_does_not_spend_the_tenant_s_api_budget(
    runtime: Runtime, world: World, public_world: dict[str, str]
) -> None:
    """Public budgets are the reader's address's, never the page's organization's: its API keys
    keep working while its badge is flooded."""
    badge = f"/badge/{public_world['monitor']}/status.svg"

    async def read(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(badge)

    await flood(runtime, "198.51.100.40", read, BUDGET, "badge")
    async with client_with(runtime, address="198.51.100.40") as owner:
        assert (await owner.get("/api/monitors", headers=world.alice.headers)).status_code == 200


async def test_each_badge_has_its_own_budget_per_address(
    runtime: Runtime, world: World, public_world: dict[str, str]
) -> None:
    """An image proxy (GitHub's, shields.io) fetches every organization's badges from a few
    addresses: one badge's flood from there leaves the others readable from there."""
    async with client_with(runtime) as api:
        other = await create_monitor(api, world.bob, name="Blog", config={"publicBadge": True})

    async def read(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(f"/badge/{public_world['monitor']}/status.svg")

    await flood(runtime, "198.51.100.41", read, BUDGET, "one badge")
    async with client_with(runtime, address="198.51.100.41", rate_limit_multiplier=MULTIPLIER) as proxy:
        answer = await proxy.get(f"/badge/{other['id']}/status.svg")
    assert answer.status_code == 200, answer.text[:200]


@pytest.mark.parametrize("route", ["/api/ai/ingest/{id}", "/api/ai/otlp/{id}/v1/traces"])
async def test_guessing_ingest_monitor_ids_spends_the_address_s_budget(
    runtime: Runtime, world: World, route: str
) -> None:
    event = MINIMAL_EVENT
    guesses = iter(range(1_000))

    async def guess(client: httpx.AsyncClient) -> httpx.Response:
        path = route.format(id=f"mon_guess{next(guesses)}")
        body = {"resourceSpans": []} if "otlp" in route else event
        answer = await client.post(path, json=body)
        assert answer.status_code in (404, 429), answer.text[:200]
        return answer

    await flood(runtime, "198.51.100.50", guess, FAILED_AUTH_BUDGET, "ingest guesses")
