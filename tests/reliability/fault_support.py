"""What the control plane's fault tests share: a PostgreSQL cluster of the test's own (initdb,
pg_ctl start and stop, as the `postgres` OS user), requests that say what they were answered, an
AI ingest client that sends batches with event ids and sends an unanswered one again, and a
`traxo-agent` process."""

from __future__ import annotations

import asyncio
import glob
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.ai.otlp_support import CHAT, export, span
from tests.operations.support import agent_metric
from tests.processes import BIN, command_env, free_port
from tests.tools import missing


def postgres_binaries() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian's layout); skips the test without one."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if not found or shutil.which("runuser") is None or os.geteuid() != 0:
        missing("a PostgreSQL cluster of the test's own needs root, runuser and apt-get install postgresql")
    return Path(found[-1]).parent


class PgCluster:
    """A throwaway cluster on a free port, its files in a directory of its own under the system's
    temporary directory (pytest's are root's alone, and the server runs as `postgres`)."""

    def __init__(self) -> None:
        self.bin = postgres_binaries()
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="traxo-pg-"))
        shutil.chown(self.home, "postgres")
        self.data = self.home / "data"
        self.log_path = self.home / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        command = ["runuser", "-u", "postgres", "--", str(self.bin / program), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"{program} {' '.join(args)}: {result.stdout}{result.stderr}"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        # fsync off: the test kills nothing but this cluster's clients, and it runs on a loaded machine.
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log_path), "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: the server ends every session (clients see admin_shutdown) and exits."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stopped if it runs, and its files deleted."""
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Answer:
    """One request and what it was answered (status 0: no answer, the connection failed)."""

    name: str
    status: int
    retry_after: str | None
    body: Any

    @property
    def clean_unavailable(self) -> bool:
        """503, Retry-After, and a JSON body that says why."""
        return (
            self.status == 503
            and self.retry_after is not None
            and self.retry_after.isdigit()
            and isinstance(self.body, dict)
            and isinstance(self.body.get("error"), str)
            and bool(self.body["error"])
        )


async def answer_of(name: str, request: Any) -> Answer:
    """`request` (an awaitable httpx response) as an Answer."""
    try:
        response: httpx.Response = await request
    except httpx.HTTPError as exc:
        return Answer(name, 0, None, repr(exc))
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:300]
    return Answer(name, response.status_code, response.headers.get("retry-after"), body)


@dataclass
class IngestClient:
    """Sends AI events in batches of `batch`, each event with an id of its own, one batch after
    another; a batch that is not answered 2xx (refused, cut off, 503) is sent again with the same
    ids until it is. JSON batches (`eventId`) to POST /api/ai/ingest, or with `otlp` protobuf
    exports (trace and span id) to the OTLP route."""

    base_url: str
    monitor_id: str
    name: str
    otlp: bool = False
    batch: int = 20
    answered: dict[int, list[str]] = field(default_factory=dict)  # batch number -> its events' ids
    resent: int = 0  # sends of a batch after one that was not answered 2xx
    statuses: list[int] = field(default_factory=list)  # every send's status, 0 for no answer
    _trace_id: bytes = b""

    def __post_init__(self) -> None:
        self._trace_id = hashlib.sha256(self.name.encode()).digest()[:16]

    def event_ids(self, number: int) -> list[str]:
        if self.otlp:
            return [f"{self._trace_id.hex()}:{self._span_id(number, i).hex()}" for i in range(self.batch)]
        return [f"{self.name}-{number}-{i}" for i in range(self.batch)]

    def _span_id(self, number: int, index: int) -> bytes:
        return (number * self.batch + index + 1).to_bytes(8, "big")

    def request(self, number: int) -> tuple[str, bytes, dict[str, str]]:
        if self.otlp:
            ids = [self._span_id(number, i) for i in range(self.batch)]
            spans = [span(CHAT, trace_id=self._trace_id, span_id=span_id) for span_id in ids]
            body = export(*spans).SerializeToString()
            path = f"/api/ai/otlp/{self.monitor_id}/v1/traces"
            return path, body, {"content-type": "application/x-protobuf"}
        events = [
            {
                "eventId": event_id,
                "provider": "openai",
                "model": "gpt-4o",
                "promptTokens": 10,
                "completionTokens": 5,
                "latencyMs": 100,
            }
            for event_id in self.event_ids(number)
        ]
        body = orjson.dumps({"events": events})
        return f"/api/ai/ingest/{self.monitor_id}", body, {"content-type": "application/json"}

    async def run(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        """Batch after batch until `stop` is set; the batch in hand then is sent until answered."""
        number = 0
        while not stop.is_set():
            path, body, headers = self.request(number)
            while True:
                try:
                    response = await client.post(f"{self.base_url}{path}", content=body, headers=headers)
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                self.statuses.append(status)
                if 200 <= status < 300:
                    break
                self.resent += 1
                await asyncio.sleep(0.05)  # the server is away or busy: ask again soon
            self.answered[number] = self.event_ids(number)
            number += 1


class LoggedProcess:
    """A command run by the test, its output in `directory`/`name`.log (never a pipe nobody reads)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], directory: Path) -> None:
        self.args, self.env = args, env
        self.log_path = directory / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.args, env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        assert await asyncio.wait_for(self.process.wait(), 15) == -signal.SIGKILL

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class AgentRun(LoggedProcess):
    """`traxo-agent` for one region with a spool of its own."""

    def __init__(self, name: str, region: str, token: str, grpc_port: int, directory: Path) -> None:
        self.metrics_port = free_port()
        args = [
            str(BIN / "traxo-agent"),
            "--control-plane", f"127.0.0.1:{grpc_port}",
            "--region", region,
            "--name", name,
            "--spool", str(directory / f"{name}.spool"),
            "--metrics-host", "127.0.0.1",
            "--metrics-port", str(self.metrics_port),
            "--reconnect-min", "0.2",
            "--reconnect-max", "0.5",
            "--shutdown-deadline", "3",
        ]  # fmt: skip
        super().__init__(name, args, {**command_env(None), "TRAXO_AGENT_TOKEN": token}, directory)

    async def metric(self, name: str) -> float:
        return await agent_metric(self.metrics_port, name)
