"""A real `traxo api` process on 127.0.0.1 port 0, for tests of what its HTTP server itself answers."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.processes import BIN, command_env, stop
from tests.waiting import eventually_sync

_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class ApiServer:
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def traxo_api(directory: Path, within: float = 60, *, migrate: bool = False) -> Iterator[ApiServer]:
    """`traxo api` with an empty SQLite file of its own, no workers and no gRPC, until the block ends.

    No schema either (--no-migrate) unless `migrate`: what most of these tests ask of it, the HTTP
    server, docs and unauthenticated answers, never reads a table, and starting is quicker without
    it. With the schema, a test writes its rows through `sqlite_url(directory)`, the server's file.
    """
    log_path = directory / "api.log"
    env = command_env(sqlite_url(directory), TRAXO_LOG_LEVEL="info")
    args = [str(BIN / "traxo"), "api", "--host", "127.0.0.1", "--port", "0"]
    args += ["--no-workers", "--no-grpc", *([] if migrate else ["--no-migrate"])]
    with log_path.open("w") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        # Port 0: the kernel picks the port, and uvicorn's start-up line says which.
        port = eventually_sync(lambda: _listening_port(log_path, process), within, "traxo api to listen")
        assert port is not None
        server = ApiServer(port, log_path)
        # /readyz wants the schema at its head; without one (the default here) the process is up all the same.
        health = "/readyz" if migrate else "/healthz"
        eventually_sync(lambda: _ready(server, health), within, f"traxo api to answer {health}")
        yield server
    finally:
        stop(process)


def sqlite_url(directory: Path) -> str:
    """The database of the `traxo api` started in `directory`."""
    return f"sqlite+aiosqlite:///{directory / 'traxo.db'}"


def _listening_port(log_path: Path, process: subprocess.Popen[str]) -> int | None:
    text = log_path.read_text(errors="replace")
    if process.poll() is not None:
        raise AssertionError(f"traxo api exited with {process.returncode}:\n{text}")
    match = _LISTENING.search(text)
    return int(match[1]) if match else None


def _ready(server: ApiServer, path: str) -> bool:
    try:
        return httpx.get(f"{server.base_url}{path}", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
