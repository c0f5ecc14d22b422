"""`traxo-agent` as a real process: SIGTERM, restart with a spool and persisted assignments, bad tokens."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

import aiohttp
import pytest
from agent_fake_control_plane import FakeControlPlane

from agent import cli
from tests.checks.http_target import Target
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb

AGENT = str(Path(sys.executable).parent / "traxo-agent")


class AgentProcess:
    def __init__(self, process: asyncio.subprocess.Process, metrics_port: int, log: list[str]) -> None:
        self.process = process
        self.metrics_port = metrics_port
        self.log = log  # its stderr's lines so far

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.metrics_port}{path}") as response:
                return response.status, await response.text()

    async def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            return await self.process.wait()


async def start_agent(
    control_plane: FakeControlPlane, tmp_path: Path, deadline_s: float = 3.0, extra: tuple[str, ...] = ()
) -> AgentProcess:
    env = {**os.environ, "TRAXO_AGENT_TOKEN": "good-token"}
    process = await asyncio.create_subprocess_exec(
        AGENT,
        "--control-plane",
        f"127.0.0.1:{control_plane.port}",
        "--region",
        "eu-test",
        "--metrics-host",
        "127.0.0.1",
        "--metrics-port",
        "0",
        "--spool",
        str(tmp_path / "spool.sqlite3"),
        "--reconnect-min",
        "0.05",
        "--reconnect-max",
        "0.2",
        "--shutdown-deadline",
        str(deadline_s),
        *extra,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log: list[str] = []
    async with asyncio.timeout(15):
        while line := (await process.stderr.readline()).decode():
            log.append(line)
            if match := re.search(r"metrics listening on 127\.0\.0\.1:(\d+)", line):
                asyncio.get_running_loop().create_task(_drain(process.stderr, log))
                return AgentProcess(process, int(match.group(1)), log)
    raise AssertionError(f"agent exited early with {await process.wait()}")


async def _drain(stream: asyncio.StreamReader, log: list[str]) -> None:
    while line := await stream.readline():  # keep the pipe from filling up
        log.append(line.decode(errors="replace"))


def spooled_ids(tmp_path: Path) -> list[bytes]:
    with sqlite3.connect(tmp_path / "spool.sqlite3") as db:
        payloads = [row[0] for row in db.execute("SELECT payload FROM results ORDER BY seq")]
    return [r.result_id.encode() for p in payloads for r in pb.ResultBatch.FromString(p).results]


def http_monitor(target: Target) -> pb.Assignment:
    return pb.Assignment(
        monitor_id="mon_web",
        type="HTTP",
        target=f"{target.url}/ok",
        interval_seconds=1,
        timeout_seconds=2,
        config_json="{}",
        epoch=1,
    )


async def test_restart_during_an_outage_runs_persisted_assignments_and_replays(
    control_plane: FakeControlPlane, target: Target, tmp_path: Path
) -> None:
    control_plane.set_monitor(http_monitor(target))
    agent = await start_agent(control_plane, tmp_path)
    await control_plane.wait_for(lambda: bool(control_plane.results))

    await control_plane.stop()  # outage: results now pile up in the spool
    hits = target.hits
    await target.wait_hits(hits + 1)
    assert await agent.terminate() == 0
    before_restart = set(spooled_ids(tmp_path))
    assert before_restart, "the unsent result should be in the spool"

    agent = await start_agent(control_plane, tmp_path)  # still no control plane
    status, body = await agent.get("/readyz")
    assert (status, body) == (200, "ready\n")  # ready: running persisted assignments
    hits = target.hits
    await target.wait_hits(hits + 1)

    await control_plane.start()
    stored = control_plane.results
    await control_plane.wait_for(lambda: {i.decode() for i in before_restart} <= set(stored))
    status, metrics = await agent.get("/metrics")
    assert "traxo_agent_connected 1.0" in metrics
    assert await agent.terminate() == 0
    assert spooled_ids(tmp_path) == []  # connected at SIGTERM: everything was flushed and acknowledged
    # Every check the target saw is stored exactly once: nothing lost across the outage and restart. (A
    # result may cross the wire twice when an ack is lost; the server's insert by result id absorbs it.)
    assert len(control_plane.results) == target.hits


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_whole_run_logged_at_debug_never_shows_the_agents_token(
    control_plane: FakeControlPlane, target: Target, tmp_path: Path, log_format: str
) -> None:
    # Registration, checks, results, an outage and its reconnections, a shutdown: all at DEBUG.
    control_plane.set_monitor(http_monitor(target))
    debug = ("--log-level", "DEBUG", "--log-format", log_format)
    agent = await start_agent(control_plane, tmp_path, extra=debug)
    await control_plane.wait_for(lambda: bool(control_plane.results))
    await control_plane.stop()
    await target.wait_hits(target.hits + 2)
    await control_plane.start()
    sent = len(control_plane.results)
    await control_plane.wait_for(lambda: len(control_plane.results) > sent)
    assert await agent.terminate() == 0
    log = "".join(agent.log)
    assert "DEBUG" in log and len(agent.log) > 5, log  # it did log, and at DEBUG
    assert "good-token" not in log


def test_either_log_format_masks_the_token_should_a_line_carry_it() -> None:
    record = logging.LogRecord("agent", logging.ERROR, __file__, 1, "dialing with %s", ("tok-secret",), None)
    for formatter in (cli._TextFormatter("tok-secret"), cli._JsonFormatter("tok-secret")):
        line = formatter.format(record)
        assert "dialing with ***" in line and "tok-secret" not in line, line


async def test_sigterm_with_a_check_running_exits_zero(
    control_plane: FakeControlPlane, tmp_path: Path
) -> None:
    # A TCP target that never answers HTTP: the check is still running when SIGTERM arrives.
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read()

    connected = asyncio.Event()
    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    control_plane.set_monitor(
        pb.Assignment(
            monitor_id="mon_hang",
            type="HTTP",
            target=f"http://127.0.0.1:{port}/",
            interval_seconds=1,
            timeout_seconds=30,
            config_json="{}",
            epoch=1,
        )
    )
    agent = await start_agent(control_plane, tmp_path, deadline_s=0.3)
    async with asyncio.timeout(10):
        await connected.wait()
    assert await agent.terminate() == 0
    server.close()


async def test_a_refused_token_exits_non_zero_with_a_clear_message(
    control_plane: FakeControlPlane, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        AGENT,
        "--control-plane",
        f"127.0.0.1:{control_plane.port}",
        "--region",
        "eu-test",
        "--token",
        "nope",
        "--metrics-host",
        "127.0.0.1",
        "--metrics-port",
        "0",
        "--spool",
        str(tmp_path / "spool.sqlite3"),
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(15):
        _, stderr = await process.communicate()
    assert process.returncode == 3
    assert "refused the agent token (UNAUTHENTICATED: unknown or revoked agent token)" in stderr.decode()
