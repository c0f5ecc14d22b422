"""The public page's answers kept a few seconds (status_page_cache_seconds; off in the other
tests): replayed alike to anonymous visitors while younger than the setting by the runtime's
clock, then still replayed while a refresh runs behind, which the next visitors see; never for a
request with a key or a validator, nor for a private page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from control_plane.db import Database
from control_plane.settings import Settings
from control_plane.status_pages import public
from tests.clock import MovableClock
from tests.conftest import World
from tests.status_pages.support import create_page
from tests.waiting import eventually

SECONDS = 5


@pytest.fixture
async def cached_api(
    settings: Settings, database: Database, clock: MovableClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The app of a server keeping public answers SECONDS (the same database and clock)."""
    kept = Settings(database_url=settings.database_url, redis_url=None, status_page_cache_seconds=SECONDS)
    app = create_app(kept, Runtime.build(kept, database, clock=clock))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


async def refreshed(api: httpx.AsyncClient) -> None:
    """Once the refreshes the last requests started behind their answers are done."""
    await api.app.state.public_answers.refreshed()  # type: ignore[attr-defined]


async def declare(api: httpx.AsyncClient, world: World, slug: str, title: str) -> None:
    response = await api.post(
        f"/api/status-pages/{slug}/incidents",
        json={"title": title, "impact": "major", "message": "Looking into it"},
        headers=world.alice.headers,
    )
    assert response.status_code == 201, response.text


def titles(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [incident["title"] for incident in answer.json()["data"]["activeIncidents"]]


async def test_it_replays_a_public_pages_json_until_it_is_older_than_the_setting(
    cached_api: httpx.AsyncClient, world: World, clock: MovableClock
) -> None:
    await create_page(cached_api, world.alice, slug="cached")
    same_id = {"X-Request-ID": "visitor-1"}  # each answer carries its request's id
    first = await cached_api.get("/api/status-pages/cached", headers=same_id)
    assert titles(first) == []
    assert "x-traxo-shared-answer" not in first.headers
    await declare(cached_api, world, "cached", "Elevated errors")
    clock.advance(timedelta(seconds=SECONDS - 0.5))
    replayed = await cached_api.get("/api/status-pages/cached", headers=same_id)
    assert replayed.content == first.content
    # The same headers, but the first visitor's budget: its address's, not every visitor's.
    assert "x-ratelimit-remaining" in first.headers and "x-ratelimit-remaining" not in replayed.headers
    assert replayed.headers == {k: v for k, v in first.headers.items() if not k.startswith("x-ratelimit-")}
    another = await cached_api.get("/api/status-pages/cached", headers={"X-Request-ID": "visitor-2"})
    assert another.content == first.content and another.headers["X-Request-ID"] == "visitor-2"
    clock.advance(timedelta(seconds=0.5))
    # Older than the setting: still given at once, while the route answers a copy behind it.
    stale = await cached_api.get("/api/status-pages/cached")
    assert stale.content == first.content
    await refreshed(cached_api)
    assert titles(await cached_api.get("/api/status-pages/cached")) == ["Elevated errors"]


async def test_it_replays_a_public_pages_html_per_encoding_until_it_is_older_than_the_setting(
    cached_api: httpx.AsyncClient, world: World, clock: MovableClock
) -> None:
    await create_page(cached_api, world.alice, slug="cached")
    plain = await cached_api.get("/status/cached", headers={"Accept-Encoding": "identity"})
    gzipped = await cached_api.get("/status/cached", headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == gzipped.status_code == 200
    assert "content-encoding" not in plain.headers and gzipped.headers["content-encoding"] == "gzip"
    assert "x-traxo-shared-answer" not in plain.headers and "x-traxo-shared-answer" not in gzipped.headers
    await declare(cached_api, world, "cached", "Database outage")
    clock.advance(timedelta(seconds=1))
    for encoding, before in (("identity", plain), ("gzip", gzipped)):
        again = await cached_api.get("/status/cached", headers={"Accept-Encoding": encoding})
        assert again.content == before.content and "Database outage" not in again.text
        assert again.headers["etag"] == before.headers["etag"]
    clock.advance(timedelta(seconds=SECONDS))
    stale = await cached_api.get("/status/cached", headers={"Accept-Encoding": "gzip"})
    assert stale.content == gzipped.content
    await refreshed(cached_api)
    fresh = await cached_api.get("/status/cached", headers={"Accept-Encoding": "gzip"})
    assert "Database outage" in fresh.text and fresh.headers["etag"] != gzipped.headers["etag"]
    # Each encoding's answer is refreshed by a request of its own.
    assert (await cached_api.get("/status/cached", headers={"Accept-Encoding": "identity"})).content == (
        plain.content
    )


async def test_it_answers_a_request_with_a_validator_from_the_route(
    cached_api: httpx.AsyncClient, world: World
) -> None:
    await create_page(cached_api, world.alice, slug="cached")
    first = await cached_api.get("/status/cached")
    again = await cached_api.get("/status/cached", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


async def test_it_stops_replaying_a_page_made_private_once_its_answer_expires(
    cached_api: httpx.AsyncClient, world: World, clock: MovableClock
) -> None:
    await create_page(cached_api, world.alice, slug="cached")
    assert (await cached_api.get("/api/status-pages/cached")).status_code == 200
    response = await cached_api.put(
        "/api/status-pages/cached", json={"isPublic": False}, headers=world.alice.headers
    )
    assert response.status_code == 200, response.text
    clock.advance(timedelta(seconds=SECONDS))
    # The last public answer once more, while the refresh behind it finds the page private.
    assert (await cached_api.get("/api/status-pages/cached")).status_code == 200
    await refreshed(cached_api)
    for _ in range(2):
        assert (await cached_api.get("/api/status-pages/cached")).status_code == 404
    # Its own organization still reads it, never replayed to anyone else.
    own = await cached_api.get("/api/status-pages/cached", headers=world.alice.headers)
    assert own.status_code == 200 and "x-traxo-shared-answer" not in own.headers
    assert (await cached_api.get("/api/status-pages/cached")).status_code == 404


async def test_a_request_with_a_key_is_answered_by_the_route_and_sees_a_page_edit_at_once(
    cached_api: httpx.AsyncClient, world: World
) -> None:
    await create_page(cached_api, world.alice, slug="cached")
    assert (await cached_api.get("/api/status-pages/cached")).json()["data"]["name"] == "Acme Status"
    response = await cached_api.put(
        "/api/status-pages/cached", json={"name": "Renamed"}, headers=world.alice.headers
    )
    assert response.status_code == 200, response.text
    keyed = await cached_api.get("/api/status-pages/cached", headers=world.bob.headers)
    assert keyed.json()["data"]["name"] == "Renamed"  # the page's view is kept per edit of the page
    assert (await cached_api.get("/api/status-pages/cached")).json()["data"]["name"] == "Acme Status"


async def test_a_replayed_answer_counts_under_its_route_template(
    cached_api: httpx.AsyncClient, world: World
) -> None:
    from tests.observability.test_counters import answered

    await create_page(cached_api, world.alice, slug="counted")
    route = "/api/status-pages/{slug}"
    before = answered(route, "GET", 200)
    first = await cached_api.get("/api/status-pages/counted")
    replayed = await cached_api.get("/api/status-pages/counted")
    assert "x-traxo-shared-answer" not in first.headers and replayed.content == first.content
    assert answered(route, "GET", 200) == before + 2


async def test_no_visitor_waits_for_a_refresh_and_none_is_given_an_answer_twice_the_setting_old(
    cached_api: httpx.AsyncClient, world: World, clock: MovableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_page(cached_api, world.alice, slug="cached")
    first = await cached_api.get("/api/status-pages/cached")
    assert titles(first) == []
    await declare(cached_api, world, "cached", "Elevated errors")

    # The page's view held until the test lets it go: a refresh that takes as long as it likes.
    views = public.PAGE_VIEWS.view
    release = asyncio.Event()
    computing = 0

    async def slow_view(*args: Any, **kwargs: Any) -> Any:
        nonlocal computing
        computing += 1
        await release.wait()
        return await views(*args, **kwargs)

    monkeypatch.setattr(public.PAGE_VIEWS, "view", slow_view)
    clock.advance(timedelta(seconds=SECONDS))
    stale = await asyncio.wait_for(cached_api.get("/api/status-pages/cached"), 5)
    assert stale.content == first.content
    await eventually(lambda: computing == 1, 5, "the refresh behind the first stale answer")
    for _ in range(3):  # while it runs on, the visitors do not wait, and start no other
        stale = await asyncio.wait_for(cached_api.get("/api/status-pages/cached"), 5)
        assert stale.content == first.content
    assert computing == 1

    clock.advance(timedelta(seconds=SECONDS))  # twice the setting: too old to give anyone
    waiting = asyncio.create_task(cached_api.get("/api/status-pages/cached"))
    await asyncio.sleep(0.2)
    assert not waiting.done() and computing == 2  # this visitor waits for the route
    release.set()
    assert titles(await asyncio.wait_for(waiting, 5)) == ["Elevated errors"]
    await refreshed(cached_api)
    assert titles(await cached_api.get("/api/status-pages/cached")) == ["Elevated errors"]


async def test_a_failed_refresh_leaves_the_kept_answer_and_the_next_visitor_tries_again(
    cached_api: httpx.AsyncClient, world: World, clock: MovableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_page(cached_api, world.alice, slug="cached")
    first = await cached_api.get("/api/status-pages/cached")
    await declare(cached_api, world, "cached", "Elevated errors")
    views = public.PAGE_VIEWS.view
    calls = 0

    async def failing_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the view failed")
        return await views(*args, **kwargs)

    monkeypatch.setattr(public.PAGE_VIEWS, "view", failing_once)
    clock.advance(timedelta(seconds=SECONDS))
    assert (await cached_api.get("/api/status-pages/cached")).content == first.content
    await refreshed(cached_api)
    assert calls == 1
    # The failure kept nothing: the kept answer is still given, and starts the next refresh.
    assert (await cached_api.get("/api/status-pages/cached")).content == first.content
    await refreshed(cached_api)
    assert calls == 2
    assert titles(await cached_api.get("/api/status-pages/cached")) == ["Elevated errors"]
