"""Heartbeat pings over real HTTP: every endpoint and its validation, start/finish pairing, the body
kept as the log, minRuntime, rate limits, paused monitors, and tenancy of the results."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from control_plane.heartbeats import HEARTBEAT_REGION
from control_plane.heartbeats.states import MAX_OPEN_RUNS
from control_plane.results import ingest
from tests.heartbeat_support import heartbeat_monitor, ping, results_of, state_of

OK = {"ok": True}


async def test_get_and_post_store_an_up_check_from_the_heartbeat_region(api, world, database):
    monitor, token = await heartbeat_monitor(api, world.alice)
    for method in ("GET", "POST"):
        response = await api.request(method, f"/api/heartbeat/{token}", headers={"User-Agent": "curl/8.5"})
        assert response.status_code == 200 and response.json() == OK, response.text
    checks = (await api.get(f"/api/monitors/{monitor['id']}/checks", headers=world.alice.headers)).json()
    assert [(c["status"], c["region"], c["error"]) for c in checks["data"]] == [
        ("UP", HEARTBEAT_REGION, None)
    ] * 2
    stored = await results_of(database, monitor["id"])
    assert stored[0].details == {"ping": "success", "userAgent": "curl/8.5", "sourceIp": "127.0.0.1"}
    listed = (await api.get("/api/monitors", headers=world.alice.headers)).json()["data"]
    assert listed[0]["lastCheck"]["status"] == "UP"


async def test_the_body_is_the_log_whatever_its_content_type(api, world, database):
    monitor, token = await heartbeat_monitor(api, world.alice)
    # curl --data-binary sends application/x-www-form-urlencoded; raw bytes send no Content-Type.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert (await api.post(f"/api/heartbeat/{token}", content=b"backup done\n", headers=form)).json() == OK
    assert (await api.post(f"/api/heartbeat/{token}/fail", content=b"disk full \xff")).json() == OK
    first, second = await results_of(database, monitor["id"])
    assert first.details is not None and second.details is not None
    assert (first.details["log"], first.details["logBytes"], first.details["logTruncated"]) == (
        "backup done\n",
        12,
        False,
    )
    assert second.details["log"] == "disk full \ufffd"  # not UTF-8: replaced, not refused


async def test_a_body_over_every_limit_is_truncated_not_refused(api, world, database, settings):
    monitor, token = await heartbeat_monitor(api, world.alice)
    size = settings.max_body_bytes * 2  # over the API's own body limit too
    response = await api.post(f"/api/heartbeat/{token}", content=b"x" * size)
    assert response.status_code == 200, response.text
    (stored,) = await results_of(database, monitor["id"])
    assert stored.details is not None
    assert stored.details["log"] == "x" * settings.heartbeat_body_max_bytes
    assert stored.details["logBytes"] == size and stored.details["logTruncated"] is True
    # Elsewhere the API's limit still holds.
    big = await api.post("/api/api-keys", content=b"x" * size, headers=world.alice.headers)
    assert big.status_code == 413


async def test_fail_and_exit_codes_say_why_the_check_is_down(api, world, database):
    monitor, token = await heartbeat_monitor(api, world.alice)
    for suffix in ("/fail", "/0", "/3", "/255"):
        assert (await api.get(f"/api/heartbeat/{token}{suffix}")).json() == OK, suffix
    stored = await results_of(database, monitor["id"])
    assert [(r.status, r.error_kind, r.error_message) for r in stored] == [
        ("DOWN", "heartbeat_fail", "Job reported failure"),
        ("UP", None, None),
        ("DOWN", "exit_code", "Exit code 3"),
        ("DOWN", "exit_code", "Exit code 255"),
    ]
    assert [r.details["ping"] for r in stored if r.details] == ["fail", "exit", "exit", "exit"]
    assert stored[2].details is not None and stored[2].details["exitCode"] == 3


@pytest.mark.parametrize("suffix", ["/256", "/-1", "/abc", "/1.5"])
async def test_an_exit_code_outside_0_to_255_is_a_400_naming_it(api, world, database, suffix):
    monitor, token = await heartbeat_monitor(api, world.alice)
    response = await api.post(f"/api/heartbeat/{token}{suffix}")
    assert response.status_code == 400 and response.json()["error"].startswith("exitCode: ")
    assert await results_of(database, monitor["id"]) == []


@pytest.mark.parametrize("rid", ["", "x" * 65, "has space", "a/b", "ünï"])
async def test_a_bad_rid_is_a_400_naming_it(api, world, rid):
    _, token = await heartbeat_monitor(api, world.alice)
    for path in ("", "/start", "/fail", "/0"):
        response = await api.get(f"/api/heartbeat/{token}{path}", params={"rid": rid})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"].startswith("rid: ")


async def test_an_unknown_token_is_a_404_for_every_endpoint(api, world):
    await heartbeat_monitor(api, world.alice)
    for path in ("", "/start", "/fail", "/0", "/1"):
        for method in ("GET", "POST"):
            response = await api.request(method, f"/api/heartbeat/hb_unknown{path}")
            assert response.status_code == 404, (method, path)
            assert response.json() == {"error": "Heartbeat not found: no HEARTBEAT monitor has this token"}
    http = await api.post(
        "/api/monitors",
        json={"name": "API", "url": "https://example.com/", "type": "HTTP"},
        headers=world.alice.headers,
    )
    assert http.status_code == 201  # a monitor id is no token either
    assert (await api.get(f"/api/heartbeat/{http.json()['data']['id']}")).status_code == 404


async def test_other_methods_are_a_405_listing_get_and_post(api, world):
    _, token = await heartbeat_monitor(api, world.alice)
    response = await api.put(f"/api/heartbeat/{token}")
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST"


async def test_a_start_is_no_check_and_its_finish_is_timed(api, world, database, clock):
    monitor, token = await heartbeat_monitor(api, world.alice)
    assert (await api.get(f"/api/heartbeat/{token}/start")).json() == OK
    assert await results_of(database, monitor["id"]) == []
    state = await state_of(database, monitor["id"])
    assert state is not None and set(state.open_runs) == {""} and state.last_start_at is not None
    clock.advance(timedelta(seconds=5))
    await api.get(f"/api/heartbeat/{token}")
    (finish,) = await results_of(database, monitor["id"])
    assert finish.details is not None and 5 <= finish.details["runtimeSeconds"] < 6
    assert finish.response_time is not None and 5000 <= finish.response_time < 6000
    state = await state_of(database, monitor["id"])
    assert state is not None and state.open_runs == {}
    # A finish with no run open is untimed.
    await api.get(f"/api/heartbeat/{token}/0")
    untimed = (await results_of(database, monitor["id"]))[-1]
    assert untimed.response_time is None and "runtimeSeconds" not in (untimed.details or {})


async def test_runs_pair_by_rid(api, world, database, clock):
    monitor, token = await heartbeat_monitor(api, world.alice)
    url = f"/api/heartbeat/{token}"
    await api.post(f"{url}/start", params={"rid": "run-a"})
    clock.advance(timedelta(seconds=10))
    await api.post(f"{url}/start", params={"rid": "run-b"})
    await api.post(f"{url}/start")  # without a rid: its own run
    clock.advance(timedelta(seconds=3))
    await api.post(f"{url}/1", params={"rid": "run-b"})
    await api.post(url, params={"rid": "run-a"})
    await api.post(url)
    b, a, plain = await results_of(database, monitor["id"])
    assert (b.status, b.details and b.details["rid"]) == ("DOWN", "run-b")
    assert b.details is not None and 3 <= b.details["runtimeSeconds"] < 4
    assert a.details is not None and a.details["rid"] == "run-a" and 13 <= a.details["runtimeSeconds"] < 14
    assert plain.details is not None and 3 <= plain.details["runtimeSeconds"] < 4
    assert "rid" not in plain.details


async def test_a_run_under_min_runtime_is_down(api, world, database, clock):
    monitor, token = await heartbeat_monitor(api, world.alice, config={"minRuntime": 30})
    url = f"/api/heartbeat/{token}"
    await api.get(f"{url}/start")
    clock.advance(timedelta(seconds=2))
    await api.get(url)
    await api.get(f"{url}/start")
    clock.advance(timedelta(seconds=31))
    await api.get(url)
    await api.get(url)  # untimed: nothing to judge
    fast, slow, untimed = await results_of(database, monitor["id"])
    assert (fast.status, fast.error_kind) == ("DOWN", "heartbeat_min_runtime")
    assert fast.error_message == "Run finished in 2 s, under minRuntime 30 s"
    assert (slow.status, untimed.status) == ("UP", "UP")


async def test_open_runs_are_bounded_oldest_dropped(api, world, database, clock):
    monitor, token = await heartbeat_monitor(api, world.alice)
    start = clock()
    for i in range(MAX_OPEN_RUNS + 5):
        await ping(database, token, start + timedelta(seconds=i), "start", rid=f"r{i}")
    state = await state_of(database, monitor["id"])
    assert state is not None and len(state.open_runs) == MAX_OPEN_RUNS
    assert "r0" not in state.open_runs and "r4" not in state.open_runs and "r5" in state.open_runs


async def test_pings_are_rate_limited_per_token(settings, database, clock, world):
    limited = settings.model_copy(update={"heartbeat_pings_per_minute": 3})
    app = create_app(limited, Runtime.build(limited, database, clock=clock))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as api:
        _, token = await heartbeat_monitor(api, world.alice)
        _, other = await heartbeat_monitor(api, world.alice, name="Other job")
        for _ in range(3):
            assert (await api.get(f"/api/heartbeat/{token}")).status_code == 200
        refused = await api.post(f"/api/heartbeat/{token}/start")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["error"].startswith(
            "Rate limit exceeded: 3 pings per minute for this heartbeat"
        )
        assert (await api.get(f"/api/heartbeat/{other}")).status_code == 200


async def test_pings_show_in_their_own_organization_only(api, world):
    monitor, token = await heartbeat_monitor(api, world.alice)
    # The token decides, whoever sends it: another organization's key changes nothing.
    assert (await api.get(f"/api/heartbeat/{token}", headers=world.bob.headers)).json() == OK
    checks = f"/api/monitors/{monitor['id']}/checks"
    assert len((await api.get(checks, headers=world.vera.headers)).json()["data"]) == 1
    response = await api.get(checks, headers=world.bob.headers)
    assert response.status_code == 404 and response.json() == {"error": "Monitor not found"}


async def test_a_paused_monitor_accepts_pings_and_has_no_deadline(api, world, database):
    monitor, token = await heartbeat_monitor(api, world.alice)
    pause = await api.post(f"/api/monitors/{monitor['id']}/pause", headers=world.alice.headers)
    assert pause.status_code == 200
    assert (await api.get(f"/api/heartbeat/{token}/fail")).json() == OK
    (stored,) = await results_of(database, monitor["id"])
    assert stored.status == "DOWN"
    state = await state_of(database, monitor["id"])
    assert state is not None and state.due_at is None and state.last_ping_at is not None
    # A paused monitor never opens an incident, whatever its pings say.
    assert (await api.get("/api/incidents", headers=world.alice.headers)).json()["data"] == []


class FailingOnce:
    """A results store whose first insert fails with an error its retry policy says a fresh start
    resolves (on PostgreSQL: a deadlock, or a replay racing its original)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.error = RuntimeError("injected: a deadlock, resolved by running again")
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def insert_new(self, session: Any, results: Any) -> Any:
        if not self.failed:
            self.failed = True
            await self.inner.insert_new(session, results)  # written, then undone by the rollback
            raise self.error
        return await self.inner.insert_new(session, results)

    def retries_insert(self, exc: Exception) -> bool:
        return exc is self.error or self.inner.retries_insert(exc)


async def test_a_retried_ping_keeps_its_state_with_its_result(api, world, database, clock, monkeypatch):
    """The result's insert retried from a rollback: the state's changes of the first attempt went
    with it, and must be made again with the result (else the run stays open and the deadline does
    not move: the job is reported late although it pinged)."""
    monitor, token = await heartbeat_monitor(api, world.alice)
    assert (await api.get(f"/api/heartbeat/{token}/start", params={"rid": "r1"})).json() == OK
    before = await state_of(database, monitor["id"])
    assert before is not None and set(before.open_runs) == {"r1"}
    clock.advance(timedelta(seconds=5))

    stores: list[FailingOnce] = []
    store_of = ingest.results_store

    def failing_once(bind: Any) -> FailingOnce:
        stores.append(FailingOnce(store_of(bind)))
        return stores[-1]

    monkeypatch.setattr(ingest, "results_store", failing_once)
    assert (await api.get(f"/api/heartbeat/{token}", params={"rid": "r1"})).json() == OK
    assert [store.failed for store in stores] == [True]

    (finish,) = await results_of(database, monitor["id"])  # stored once
    assert finish.status == "UP" and finish.details is not None and 5 <= finish.details["runtimeSeconds"] < 6
    state = await state_of(database, monitor["id"])
    assert state is not None
    assert state.open_runs == {}  # the run the finish ended
    assert state.version == before.version + 1
    assert state.last_ping_at is not None and state.last_ping_at > before.last_ping_at
    assert state.last_success_at == state.last_ping_at
    assert state.due_at is not None and state.due_at > before.due_at
