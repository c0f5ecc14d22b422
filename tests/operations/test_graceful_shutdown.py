"""SIGTERM drains `traxo api`: /readyz 503 at once, the request in flight answered, exit 0; past the
deadline what remains is cancelled (exit 1, and the log says what); a second signal exits at once.
The workers' runner finishes the run it is in."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import select

from control_plane import migrate
from control_plane.db import Database
from control_plane.models import AiEvent
from control_plane.settings import Plan
from control_plane.workers.runner import PeriodicJob, WorkerRunner
from tests.conftest import make_account, make_org
from tests.factories import insert_monitor
from tests.operations.support import ApiProcess
from tests.processes import command_env
from tests.waiting import eventually

# Once, in the SQLite pass: a process's way of stopping does not depend on its database (a
# rolling restart on PostgreSQL under load is test_rolling_restart.py's).
pytestmark = [pytest.mark.slow, pytest.mark.one_pass]

EVENT = {"provider": "openai", "model": "gpt-4o", "promptTokens": 10, "completionTokens": 5, "latencyMs": 80}


def half_sent_ingest(port: int, monitor_id: str, body: bytes) -> socket.socket:
    """A POST to the ingest whose body is half sent: a request in flight for as long as the test likes."""
    conn = socket.create_connection(("127.0.0.1", port))
    head = (
        f"POST /api/ai/ingest/{monitor_id} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    conn.sendall(head.encode() + body[: len(body) // 2])
    return conn


async def line_logged(api: ApiProcess, text: str) -> None:
    async def logged() -> bool:
        return text in api.log()

    await eventually(logged, 10, f"{api.name} logs {text!r}", 0.05)


async def test_sigterm_answers_the_request_in_flight_and_exits_0(
    fresh_database_url: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(migrate.upgrade, fresh_database_url)
    db = Database(fresh_database_url)
    owner = await make_account(db, "drain@example.com", "Drain")
    await make_org(db, owner, "drain", plan=Plan.ENTERPRISE)
    monitor = await insert_monitor(db, owner.org_id or "", name="Chat", type="LLM", url=None, interval=60)
    env = command_env(
        fresh_database_url, TRAXO_SHUTDOWN_DELAY_SECONDS="1", TRAXO_SHUTDOWN_DEADLINE_SECONDS="10"
    )
    api = ApiProcess("api", env, tmp_path, "--no-migrate")
    await api.start()
    try:
        await api.ready()
        body = orjson.dumps({**EVENT, "eventId": "in-flight-1"})
        conn = await asyncio.to_thread(half_sent_ingest, api.port, monitor.id, body)
        api.signal(signal.SIGTERM)
        async with httpx.AsyncClient() as client:

            async def draining() -> bool:
                return (await client.get(f"{api.base_url}/readyz", timeout=1)).status_code == 503

            await eventually(draining, 0.8, "/readyz says 503", 0.05)
            draining_answer = await client.get(f"{api.base_url}/readyz", timeout=1)
        assert draining_answer.json() == {"error": "Draining: this process is shutting down"}
        # Past the delay the listener closes; the request in flight is still read and answered.
        await line_logged(api, "shutdown: the listener stopped accepting connections")
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as client:
                await client.get(f"{api.base_url}/healthz", timeout=1)
        await asyncio.to_thread(conn.sendall, body[len(body) // 2 :])
        answer = await asyncio.to_thread(conn.recv, 65536)
        conn.close()
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert b"connection: close" in answer.lower()  # no more requests on it
        code, _ = await api.exited(15)
        assert code == 0, api.log()
        async with db.session() as session:
            stored = list(
                await session.scalars(select(AiEvent.client_event_id).where(AiEvent.monitor_id == monitor.id))
            )
        assert stored == ["in-flight-1"]
        log = api.log()
        steps = [
            "shutdown: SIGTERM received; draining within 10 s",
            "shutdown: gRPC health NOT_SERVING done",
            "shutdown: agents' streams done",
            "shutdown: workers' current runs done",
            "shutdown: the listener stopped accepting connections",
            "shutdown: in-flight HTTP requests done",
            "shutdown: the AI ingest's queue done",
            "shutdown: done in",
        ]
        assert all(step in log for step in steps), log
        assert log.index(steps[0]) < log.index(steps[4]) < log.index(steps[5]) < log.index(steps[6])
    finally:
        await api.stop()
        await db.dispose()


async def test_past_the_deadline_what_remains_is_cancelled_and_the_exit_says_so(
    fresh_database_url: str, tmp_path: Path
) -> None:
    env = command_env(fresh_database_url, TRAXO_SHUTDOWN_DEADLINE_SECONDS="1")
    api = ApiProcess("api", env, tmp_path, "--no-grpc", "--no-workers")
    await api.start()
    try:
        await api.ready()
        conn = await asyncio.to_thread(half_sent_ingest, api.port, "mon_whatever", b'{"x": 1}')
        api.signal(signal.SIGTERM)
        code, took = await api.exited(10)
        conn.close()
        assert code == 1, api.log()
        assert took < 3
        assert "shutdown: the deadline passed; cancelled: in-flight HTTP requests" in api.log()
        assert "shutdown: the 1 s deadline passed; cancelled: in-flight HTTP requests" in api.log()
    finally:
        await api.stop()


async def test_a_second_signal_exits_at_once(fresh_database_url: str, tmp_path: Path) -> None:
    env = command_env(fresh_database_url, TRAXO_SHUTDOWN_DEADLINE_SECONDS="20")
    api = ApiProcess("api", env, tmp_path, "--no-grpc", "--no-workers")
    await api.start()
    try:
        await api.ready()
        conn = await asyncio.to_thread(half_sent_ingest, api.port, "mon_whatever", b'{"x": 1}')
        api.signal(signal.SIGTERM)
        await line_logged(api, "shutdown: the listener stopped accepting connections")
        api.signal(signal.SIGINT)
        code, took = await api.exited(5)
        conn.close()
        assert code == 128 + signal.SIGINT
        assert took < 2
        assert "shutdown: SIGINT again; exiting at once" in api.log()
    finally:
        await api.stop()


async def test_the_runner_lets_a_run_finish_and_cancels_one_past_its_grace(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    began = {"quick": asyncio.Event(), "slow": asyncio.Event()}
    finished: list[str] = []

    def job(name: str, seconds: float) -> PeriodicJob:
        async def run() -> None:
            began[name].set()
            await asyncio.sleep(seconds)
            finished.append(name)

        return PeriodicJob(name, 3600, run)

    runner = WorkerRunner(database, [job("quick", 0.3), job("slow", 30)])
    await runner.start()
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in began.values())), 5)
    with caplog.at_level(logging.WARNING, "control_plane.workers.runner"):
        cut = await asyncio.wait_for(runner.stop(grace=1), 3)
    assert finished == ["quick"]  # the slow one was cancelled at the grace's end
    # ... and says so: the shutdown then counts it as cut (exit 1), not as done.
    assert cut == ["slow"]
    assert "workers: runs still going after 1 s, cancelled: slow" in caplog.messages

    # A job that loops forever is asked to return after its pass, and does.
    passes: list[int] = []
    stopping = asyncio.Event()

    async def forever() -> None:
        while not stopping.is_set():
            passes.append(len(passes))
            await asyncio.sleep(0.05)

    looping = WorkerRunner(database, [PeriodicJob("loop", 3600, forever, stopping.set)])
    await looping.start()
    await eventually(lambda: bool(passes), 5, "the loop's first pass")
    assert await asyncio.wait_for(looping.stop(grace=5), 1) == []
