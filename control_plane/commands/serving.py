"""uvicorn's server with Traxo's graceful shutdown: SIGTERM (or SIGINT) drains the process within
the shutdown deadline and exits 0; a second signal exits at once.

uvicorn's own handling would stop accepting within 0.1 s, wait without a bound by default, and
raise the signal again at the end (the process dies of SIGTERM, not exit 0); and /readyz could not
say it is going before the listener was gone.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import signal
import socket
import sys
from types import FrameType

import uvicorn

from control_plane.core.shutdown import Shutdown

log = logging.getLogger("traxo.shutdown")

EXIT_DEADLINE_PASSED = 1


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self.traxo_shutdown = shutdown
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler (between two bytecodes of whatever ran): the event loop's work is
        # handed to it; nothing is appended to _captured_signals, so nothing re-raises the signal.
        name = signal.Signals(sig).name
        if self.should_exit or self.traxo_shutdown.draining:
            log.warning("shutdown: %s again; exiting at once", name)
            logging.shutdown()
            os._exit(128 + sig)
        if self._loop is None:  # before the loop runs: nothing to drain yet
            self.should_exit = True
            return
        # A context of its own: the signal may land inside a request, whose id is no shutdown's.
        self._loop.call_soon_threadsafe(
            self.traxo_shutdown.begin, f"{name} received", context=contextvars.Context()
        )

    async def on_tick(self, counter: int) -> bool:
        if not self.should_exit and self.traxo_shutdown.delay_passed():
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        shutdown = self.traxo_shutdown
        shutdown.begin("the server is stopping")
        for server in self.servers:
            server.close()
        log.info("shutdown: the listener stopped accepting connections (%.1f s)", shutdown.elapsed())
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle ones close now, busy ones after their answer

        async def requests_finished() -> None:
            # uvicorn signals neither set's emptying: polled, as its own shutdown does.
            while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            for server in self.servers:
                await server.wait_closed()

        if not await shutdown.step("in-flight HTTP requests", requests_finished):
            for task in self.server_state.tasks:
                task.cancel(msg="the shutdown deadline passed")
        await self.lifespan.shutdown()


def run(config: uvicorn.Config, shutdown: Shutdown) -> None:
    """Serve until a signal; exits 1 when the shutdown deadline cut a step, else returns (exit 0)."""
    server = GracefulServer(config, shutdown)
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: the app's startup failed, and said why
    if shutdown.cut:
        log.error(
            "shutdown: the %.0f s deadline passed; cancelled: %s",
            shutdown.deadline_seconds,
            "; ".join(shutdown.cut),
        )
        sys.exit(EXIT_DEADLINE_PASSED)
    log.info("shutdown: done in %.1f s", shutdown.elapsed())
