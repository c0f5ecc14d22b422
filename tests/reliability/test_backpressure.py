"""Load with backpressure (issue 16): the AI ingest takes at most TRAXO_AI_INGEST_MAX_PENDING_EVENTS
events at once and answers the rest 503 with Retry-After, storing nothing of them; every event it
answered 2xx is stored exactly once; the server's memory stays flat while it sheds; and it serves
again as soon as the load drops. Agents' results have theirs in test_backpressure_results.py: at most
TRAXO_AGENT_RESULTS_MAX_BATCHES batches are stored at once over all streams, and a stream past it
reads no further, so HTTP/2 flow control leaves the rest in the agent's spool (bench/overload.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from control_plane import migrate
from control_plane.ai.events import AiEventIn
from control_plane.ai.ingest.committer import AiIngest, Overloaded
from control_plane.api.app import create_app
from control_plane.db import Database
from control_plane.models import AiEvent
from control_plane.settings import Plan
from tests.ai.otlp_support import CHAT, export, span
from tests.ai.support import insert_llm_monitor
from tests.conftest import make_account, make_org
from tests.operations.support import ApiProcess
from tests.processes import command_env
from tests.waiting import eventually

BATCH = 25  # events a request in the process test
BOUND = 2 * BATCH  # the server's admission bound there: two requests at once, the rest shed
CLIENTS = 12
BURST_SECONDS = 3.0
RSS_MARGIN_BYTES = 40 * 1024 * 1024
EVENT = {"provider": "openai", "model": "gpt-4o", "promptTokens": 10, "completionTokens": 5, "latencyMs": 80}


def event(n: int = 0, event_id: str | None = None) -> AiEventIn:
    return AiEventIn(
        provider="openai",
        model="gpt-4o",
        prompt_tokens=n,
        completion_tokens=1,
        latency_ms=5.0,
        event_id=event_id,
    )


async def stored_ids(db: Database, monitor_id: str) -> list[str | None]:
    async with db.session() as session:
        return list(
            await session.scalars(select(AiEvent.client_event_id).where(AiEvent.monitor_id == monitor_id))
        )


async def test_requests_past_the_bound_are_refused_before_anything_is_queued(
    world, database, settings, clock
):
    bounded = AiIngest(database, settings.model_copy(update={"ai_ingest_max_pending_events": 10}), clock)
    monitor = await insert_llm_monitor(database, world.org_a)
    try:
        # Submitted in one go, before the writer first runs: 4 + 4 events are taken, then 4 more
        # would pass 10, and so would every later request until the group is answered.
        outcomes = await asyncio.gather(
            *(bounded.submit(monitor.id, [event(i, f"r{i}-{j}") for j in range(4)]) for i in range(5)),
            return_exceptions=True,
        )
        assert [type(outcome).__name__ for outcome in outcomes] == ["list"] * 2 + ["Overloaded"] * 3
        assert isinstance(outcomes[2], Overloaded)
        assert "8 events waiting" in str(outcomes[2])
        assert sorted(await stored_ids(database, monitor.id)) == sorted(
            f"r{i}-{j}" for i in range(2) for j in range(4)
        )
        assert not bounded.saturated
        # Answered: the room is free again, and a request larger than the bound is taken when
        # nothing waits (or it never would be).
        again = await bounded.submit(monitor.id, [event(9, f"big-{j}") for j in range(12)])
        assert len(again) == 12
        assert len(await stored_ids(database, monitor.id)) == 8 + 12
    finally:
        await bounded.close()


class HeldIngest(AiIngest):
    """The real ingest whose writer waits for `release` before each group: what is taken stays
    pending for as long as the test likes, as under a database slower than the load."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.release = asyncio.Event()

    async def _write(self, requests: Any) -> None:
        await self.release.wait()
        await super()._write(requests)


async def test_a_saturated_ingest_answers_503_with_retry_after_on_every_ingest_path(
    world, database, settings, runtime, clock
):
    bounded = settings.model_copy(update={"ai_ingest_max_pending_events": 4})
    held = HeldIngest(database, bounded, clock)
    app = create_app(bounded, dataclasses.replace(runtime, settings=bounded, ai_ingest=held))
    monitor = await insert_llm_monitor(database, world.org_a)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as client:
            first = asyncio.create_task(held.submit(monitor.id, [event(0, f"held-{j}") for j in range(4)]))
            await eventually(lambda: held.saturated, what="the first request taken")
            ingest = f"/api/ai/ingest/{monitor.id}"
            shed = await client.post(ingest, json={**EVENT, "eventId": "shed-1"})
            assert shed.status_code == 503, shed.text
            assert shed.headers["retry-after"] == "1"
            assert "at capacity" in shed.json()["error"]
            invalid = await client.post(ingest, json={"provider": 1})  # refused before it is even parsed
            assert invalid.status_code == 503
            otlp = await client.post(
                f"/api/ai/otlp/{monitor.id}/v1/traces",
                content=export(span(CHAT)).SerializeToString(),
                headers={"content-type": "application/x-protobuf"},
            )
            assert otlp.status_code == 503 and otlp.headers["retry-after"] == "1"
            held.release.set()
            assert len(await first) == 4
            served = await client.post(ingest, json={**EVENT, "eventId": "after-1"})
            assert served.status_code == 200, served.text
        assert sorted(await stored_ids(database, monitor.id)) == ["after-1", *(f"held-{j}" for j in range(4))]
    finally:
        held.release.set()
        await held.close()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.slow
async def test_an_overloaded_ingest_sheds_with_503_stores_every_2xx_once_and_recovers(
    fresh_database_url: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(migrate.upgrade, fresh_database_url)
    db = Database(fresh_database_url)
    owner = await make_account(db, "load@example.com", "Load")
    await make_org(db, owner, "load", plan=Plan.ENTERPRISE)
    monitor = await insert_llm_monitor(db, owner.org_id or "")
    env = command_env(
        fresh_database_url, TRAXO_AI_INGEST_MAX_PENDING_EVENTS=str(BOUND), TRAXO_LOG_LEVEL="warning"
    )
    api = ApiProcess("api", env, tmp_path, "--no-migrate", "--no-workers", "--no-grpc")
    await api.start()
    url = f"{api.base_url}/api/ai/ingest/{monitor.id}"
    answered: dict[str, int] = {}  # eventId -> the status its request got
    statuses: Counter[int] = Counter()
    retry_afters: set[str | None] = set()
    try:
        await api.ready()
        assert api.process is not None
        pid = api.process.pid
        limits = httpx.Limits(max_connections=CLIENTS + 1)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def post(name: str) -> int:
                ids = [f"{name}-{j}" for j in range(BATCH)]
                body = {"events": [{**EVENT, "eventId": event_id} for event_id in ids]}
                response = await client.post(url, json=body)
                statuses[response.status_code] += 1
                if response.status_code == 503:
                    retry_afters.add(response.headers.get("retry-after"))
                    assert set(response.json()) == {"error"}, response.text
                for event_id in ids:
                    answered[event_id] = response.status_code
                return response.status_code

            for n in range(10):  # warm-up: the allocator's and the connections' first growth
                assert await post(f"warm{n}") == 200
            baseline = rss_bytes(pid)
            peak = baseline
            deadline = time.monotonic() + BURST_SECONDS

            async def hammer(worker: int) -> None:
                n = 0
                while time.monotonic() < deadline:
                    await post(f"w{worker}-{n}")  # ignoring Retry-After: the overload goes on
                    n += 1

            async def sample() -> None:
                nonlocal peak
                while time.monotonic() < deadline:
                    peak = max(peak, rss_bytes(pid))
                    await asyncio.sleep(0.05)

            await asyncio.gather(sample(), *(hammer(worker) for worker in range(CLIENTS)))
            assert statuses[503] > 0, statuses
            assert retry_afters == {"1"}
            assert set(statuses) <= {200, 503}, statuses
            assert peak - baseline < RSS_MARGIN_BYTES, (baseline, peak)

            # The load dropped: the next request is served at once.
            async def served() -> bool:
                return await post("after") == 200

            await eventually(served, 10, "a request after the burst answered 200", 0.1)
        stored = await stored_ids(db, monitor.id)
        counted = Counter(stored)
        assert max(counted.values()) == 1, [event_id for event_id, n in counted.items() if n > 1][:5]
        ok = {event_id for event_id, status in answered.items() if status == 200}
        assert ok <= set(counted), sorted(ok - set(counted))[:5]
        shed = {event_id for event_id, status in answered.items() if status == 503}
        assert not shed & set(counted), sorted(shed & set(counted))[:5]
        async with db.session() as session:
            assert await session.scalar(select(func.count()).select_from(AiEvent)) == len(ok)
    finally:
        await api.stop()
        await db.dispose()
