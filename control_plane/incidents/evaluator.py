"""The engine in the background, for a long-running ingester (the agents' gRPC service): a
committed batch only wakes it, and the agent is acknowledged at once; it takes whatever is queued
in large chunks, one chunk at a time per process, so concurrent batches never queue up behind each
other's row locks. The queue is durable: what is queued when the process stops is evaluated by
the next evaluator to wake, or by the engine's sweep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from control_plane.db import Database, brief_error
from control_plane.incidents.engine import IncidentEngine

log = logging.getLogger(__name__)


class IncidentEvaluator:
    def __init__(self, db: Database, engine: IncidentEngine, *, chunk: int = 5000) -> None:
        self._db = db
        self._engine = engine
        self._chunk = chunk
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.evaluated = 0  # results evaluated by this evaluator (tests, metrics)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="traxo-incident-evaluator")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def after_commit(self, session: Any, stored: Sequence[Any]) -> None:
        """The results path's hook: nothing to wait for."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                while True:
                    async with self._db.session() as session:
                        outcome = await self._engine.evaluate_queued(session, limit=self._chunk)
                    self.evaluated += outcome.results
                    if outcome.results < self._chunk:
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # left queued: the next wake-up or the sweep takes it
                log.error("evaluating queued results failed: %s", brief_error(exc))
                await asyncio.sleep(1)
