"""What the control plane's fault tests share: a PostgreSQL cluster of the test's own (initdb,
pg_ctl start and stop, as the `postgres` OS user), requests that say what they were answered, and
an AI ingest client that sends batches with event ids and sends an unanswered one again."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.processes import free_port
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
    """Sends AI event batches of `batch` events, each with an eventId of its own, in order; a batch
    that is not answered 2xx (refused, cut off, 503) is sent again, the same ids, until it is."""

    base_url: str
    monitor_id: str
    batch: int = 20
    answered: dict[int, list[str]] = field(default_factory=dict)  # batch number -> its events' ids
    resent: int = 0  # batches sent again after no 2xx
    statuses: list[int] = field(default_factory=list)  # every answer's status, 0 for none
    _next: int = 0

    def events(self, number: int) -> list[dict[str, Any]]:
        return [
            {
                "eventId": f"batch-{number}-event-{i}",
                "provider": "openai",
                "model": "gpt-4o",
                "promptTokens": 10 + i,
                "completionTokens": 5,
                "latencyMs": 100,
            }
            for i in range(self.batch)
        ]

    async def send_until_answered(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        """Batch after batch until `stop` is set; the batch in hand when it is set is sent until answered."""
        while True:
            number = self._next
            self._next += 1
            first = True
            while True:
                if not first:
                    self.resent += 1
                first = False
                try:
                    response = await client.post(
                        f"{self.base_url}/api/ai/ingest/{self.monitor_id}",
                        json={"events": self.events(number)},
                        timeout=10,
                    )
                except httpx.HTTPError:
                    self.statuses.append(0)
                    await asyncio.sleep(0.05)  # the server is away: ask again soon
                    continue
                self.statuses.append(response.status_code)
                if 200 <= response.status_code < 300:
                    data = response.json()["data"]
                    assert all("id" in event for event in data), data
                    self.answered[number] = [event["eventId"] for event in self.events(number)]
                    break
                await asyncio.sleep(0.05)
            if stop.is_set():
                return
