"""Wires the agent's parts together and runs them until SIGTERM (or a refused token)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from importlib.metadata import PackageNotFoundError, version

from agent.assignments import AssignmentStore
from agent.checks import CheckRegistry, load_registry
from agent.clock import Clock, SystemClock
from agent.connection import AuthenticationFailed, Backoff, ControlPlaneConnection
from agent.metrics import AgentMetrics
from agent.observability import ObservabilityServer
from agent.results import ResultPipeline
from agent.scheduler import Scheduler
from agent.settings import AgentSettings
from agent.spool import Spool

log = logging.getLogger(__name__)


def agent_version() -> str:
    try:
        return version("traxo")
    except PackageNotFoundError:
        return "0.0.0"


class Agent:
    def __init__(
        self, settings: AgentSettings, clock: Clock | None = None, registry: CheckRegistry | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = AgentMetrics()
        self.registry = registry or load_registry()
        self.spool = Spool(
            settings.spool_path, settings.spool_max_bytes, settings.spool_max_age_s, self.clock
        )
        self.pipeline = ResultPipeline(self.spool, self.metrics, self.clock)
        self.scheduler = Scheduler(
            self.registry.runner,
            self.pipeline,
            self.clock,
            settings.region,
            self.metrics,
            settings.max_concurrency,
        )
        self.store = AssignmentStore(settings.assignments_path, self.scheduler)
        self.connection = ControlPlaneConnection(
            settings,
            self.registry.capabilities,
            agent_version(),
            self.store,
            self.pipeline,
            self.metrics,
            self.clock,
            Backoff(settings.reconnect_min_s, settings.reconnect_max_s),
        )
        self.observability = ObservabilityServer(self.metrics, self.not_ready_reason)
        self._stop = asyncio.Event()
        self.started = asyncio.Event()  # the metrics endpoint is up and the parts are running

    def not_ready_reason(self) -> str | None:
        if self.store.has_state:
            return None
        if not self.connection.registered:
            return "not registered with the control plane and no persisted assignments"
        return "registered, waiting for the assignment snapshot"

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Runs until request_stop(); raises AuthenticationFailed if the token is refused."""
        async with contextlib.AsyncExitStack() as resources:  # released in reverse, however run() ends
            await self.spool.open()
            resources.push_async_callback(self.spool.close)
            self.store.load()
            await self.pipeline.update_spool_metrics()
            port = await self.observability.start(self.settings.metrics_host, self.settings.metrics_port)
            resources.push_async_callback(self.observability.stop)
            log.info("metrics listening on %s:%d", self.settings.metrics_host, port)
            # Before the first check and the first registration: both depend on what this host can run.
            _configure_browser(self.settings)
            resources.push_async_callback(self.registry.aclose)
            await self.registry.probe()
            log.info("capabilities: %s", ", ".join(self.registry.capabilities))
            await self._run_parts()

    async def _run_parts(self) -> None:
        background = [
            asyncio.create_task(self.scheduler.run(), name="scheduler"),
            asyncio.create_task(self.pipeline.run_writer(), name="spool-writer"),
            asyncio.create_task(self.store.run_persister(), name="assignment-persister"),
        ]
        connection = asyncio.create_task(self.connection.run(), name="connection")
        stop = asyncio.create_task(self._stop.wait())
        self.started.set()
        try:
            await asyncio.wait([connection, stop], return_when=asyncio.FIRST_COMPLETED)
            if connection.done():
                connection.result()  # AuthenticationFailed propagates from here
            await self._shutdown(connection)
        finally:
            for task in [*background, connection, stop]:
                task.cancel()
            await asyncio.gather(*background, connection, stop, return_exceptions=True)

    async def _shutdown(self, connection: asyncio.Task[None]) -> None:
        log.info(
            "stopping: no new checks; waiting up to %.0fs for running ones", self.settings.shutdown_deadline_s
        )
        self.scheduler.stop()
        cancelled = await self.scheduler.drain(self.settings.shutdown_deadline_s)
        if cancelled:
            log.warning("cancelled %d checks still running at the deadline", cancelled)
        await self.pipeline.flush()
        await self.store.persist()
        if self.connection.registered and not connection.done():
            if await self.pipeline.wait_drained(self.settings.shutdown_deadline_s):
                log.info("all results acknowledged")
            else:
                log.warning("results not acknowledged in time stay in the spool for the next start")
        stats = await self.spool.stats()
        log.info("stopped; %d unacknowledged results in the spool", stats.count)


def _configure_browser(settings: AgentSettings) -> None:
    try:
        from agent.checks import browser_pool  # Playwright is optional: without it, no BROWSER checks
    except ImportError:
        return
    browser_pool.configure_pool(settings.chromium_path, settings.max_browser_checks)


__all__ = ["Agent", "AuthenticationFailed"]
