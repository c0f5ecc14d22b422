"""What the operations tests share: `traxo api` processes whose output goes to a file, started,
signalled and waited for; a local HTTP target that counts the agent's probes."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
from aiohttp import web

from tests.processes import BIN, free_port
from tests.waiting import eventually


class ApiProcess:
    """`traxo api` on 127.0.0.1 (REST and gRPC ports of its own), its output in `log_path`."""

    def __init__(self, name: str, env: dict[str, str], directory: Path, *options: str) -> None:
        self.name = name
        self.env = env
        self.port = free_port()
        self.grpc_port = free_port()
        self.log_path = directory / f"{name}.log"
        self.options = options
        self.process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        args = [str(BIN / "traxo"), "api", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--grpc-port", str(self.grpc_port), *self.options]
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *args, env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )

    async def ready(self, within: float = 30) -> None:
        async def answers() -> bool:
            assert self.process is not None and self.process.returncode is None, self.log()
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.base_url}/readyz", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(answers, within, f"{self.name} answers /readyz", 0.1)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def exited(self, within: float) -> tuple[int, float]:
        """The exit code, and how long it took from now."""
        assert self.process is not None
        started = time.monotonic()
        code = await asyncio.wait_for(self.process.wait(), within)
        return code, time.monotonic() - started

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


async def terminated_once_logged(
    args: list[str], env: dict[str, str], log_path: Path, line: str, *, within: float, exit_within: float
) -> int:
    """Start a process with its output in `log_path`, SIGTERM it once `line` is in that log, and
    return its exit code (it is killed if it has not exited within `exit_within` seconds)."""
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    try:

        def logged() -> bool:
            return line in log_path.read_text()

        await eventually(logged, within, repr(line), 0.1)
        process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(process.wait(), exit_within)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


class Target:
    """An HTTP server on 127.0.0.1 the agent probes; counts the probes per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def ok(request: web.Request) -> web.Response:
            self.hits[request.path] += 1
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/{name}", ok)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def agent_metric(port: int, name: str) -> float:
    """One of the agent's Prometheus metrics (-1 when it does not answer)."""
    try:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=2)).text
    except httpx.HTTPError:
        return -1.0
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0
