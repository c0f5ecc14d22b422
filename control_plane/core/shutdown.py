"""A process's graceful shutdown: begun once (SIGTERM, or the app stopping), one deadline for all of
its steps, each step logged; a step still running at the deadline is cancelled and remembered."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("traxo.shutdown")

Step = Callable[[], Awaitable[object]]


class Shutdown:
    def __init__(
        self, deadline_seconds: float, delay_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.deadline_seconds = deadline_seconds
        # How long the process still takes new connections once draining (so that load balancers,
        # told by /readyz and gRPC health, stop sending first): within the deadline.
        self.delay_seconds = min(delay_seconds, deadline_seconds)
        self._clock = clock
        self.draining = False  # /readyz answers 503 from the moment this is set
        self.began_at: float | None = None
        self.cut: list[str] = []  # the steps the deadline cancelled
        # Run in order as soon as the shutdown begins, beside the HTTP server's own draining.
        self._first_steps: list[tuple[str, Step]] = []
        self._next_step = 0
        self._running: asyncio.Task[None] | None = None

    def on_begin(self, name: str, step: Step) -> None:
        """`step` runs once the shutdown begins (at once if it has), after the steps added before it."""
        self._first_steps.append((name, step))
        if self.draining and (self._running is None or self._running.done()):
            self._running = asyncio.get_running_loop().create_task(self._run_first_steps())

    def begin(self, reason: str) -> None:
        """Start draining (in the event loop's thread); a second call changes nothing."""
        if self.draining:
            return
        self.draining = True
        self.began_at = self._clock()
        log.info("shutdown: %s; draining within %.0f s", reason, self.deadline_seconds)
        self._running = asyncio.get_running_loop().create_task(self._run_first_steps())

    def remaining(self) -> float:
        if self.began_at is None:
            return self.deadline_seconds
        return max(0.0, self.began_at + self.deadline_seconds - self._clock())

    def elapsed(self) -> float:
        return 0.0 if self.began_at is None else self._clock() - self.began_at

    def delay_passed(self) -> bool:
        return self.draining and self.elapsed() >= self.delay_seconds

    async def after_delay(self) -> None:
        """Returns once the delay has passed (at once when there is none)."""
        await asyncio.sleep(max(0.0, self.delay_seconds - self.elapsed()))

    async def step(self, name: str, step: Step) -> bool:
        """Run one step within what is left of the deadline; False when the deadline cut it."""
        try:
            async with asyncio.timeout(self.remaining()):
                await step()
        except TimeoutError:
            self.cut.append(name)
            log.warning("shutdown: the deadline passed; cancelled: %s", name)
            return False
        log.info("shutdown: %s done (%.1f s)", name, self.elapsed())
        return True

    async def first_steps_done(self) -> None:
        """Begins the shutdown if nothing has (the app stopping on its own) and waits for the
        first steps, those added late included."""
        self.begin("the application is stopping")
        while self._running is not None:
            running = self._running
            await running
            if self._running is running:
                self._running = None
        if self._next_step < len(self._first_steps):
            await self._run_first_steps()

    async def _run_first_steps(self) -> None:
        while self._next_step < len(self._first_steps):
            name, step = self._first_steps[self._next_step]
            self._next_step += 1
            await self.step(name, step)
