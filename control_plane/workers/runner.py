"""Periodic jobs under a database lease.

On PostgreSQL each run takes a session-level advisory lock named after the job, so with many
replicas a job runs on one of them at a time; the others skip that round. On SQLite one process
owns the file, and a process-local lock is the lease.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from control_plane.db import Database, brief_error, database_unavailable
from control_plane.observability.metrics import JOBS

log = logging.getLogger(__name__)

_OUTAGE_LINE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    interval_seconds: float
    run: Callable[[], Awaitable[None]]
    # For a run that loops forever: asks it to return once its current pass is done.
    stop: Callable[[], None] | None = None


def _lock_key(name: str) -> int:
    # A stable signed 64-bit key per job name (advisory locks take a bigint).
    return int.from_bytes(hashlib.sha256(f"traxo-job:{name}".encode()).digest()[:8], "big", signed=True)


class WorkerRunner:
    def __init__(self, db: Database, jobs: list[PeriodicJob]) -> None:
        self._db = db
        self._jobs = jobs
        self._local_locks = {job.name: asyncio.Lock() for job in jobs}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running: set[str] = set()  # jobs in the middle of a run
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False
        for job in self._jobs:
            self._tasks[job.name] = asyncio.create_task(self._loop(job), name=f"traxo-job-{job.name}")

    async def stop(self, grace: float = 0.0) -> list[str]:
        """Stop every job: one waiting for its next round at once, one in the middle of a run when
        that run ends (up to `grace` seconds, then it is cancelled too). Returns the jobs whose run
        was cancelled past the grace (logged), for the shutdown to say it was cut."""
        self._stopping = True
        busy = [task for name, task in self._tasks.items() if name in self._running]
        for job in self._jobs:
            if job.name in self._running and job.stop is not None:
                job.stop()
        for name, task in self._tasks.items():
            if name not in self._running:
                task.cancel()
        if busy and grace > 0:
            log.info("workers: waiting up to %.0f s for %d job(s) to finish their run", grace, len(busy))
            await asyncio.wait(busy, timeout=grace)
        cut = sorted(name for name, task in self._tasks.items() if name in self._running and not task.done())
        if cut:
            log.warning("workers: runs still going after %.0f s, cancelled: %s", grace, ", ".join(cut))
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        return cut

    async def run_once(self, job: PeriodicJob) -> bool:
        """Run the job if this replica gets the lease; True when it ran."""
        async with self._lease(job.name) as held:
            if held:
                await job.run()
            return held

    async def _loop(self, job: PeriodicJob) -> None:
        # The traceback of a failure is logged once; the same failure again (a database without
        # its schema) is a line each round, not pages of the same traceback. A database that is
        # down is no failure of the job's: a line when the job first meets it, one a minute while
        # it lasts (rounds come every 0.5 s for some jobs), and one when the job runs again.
        last_failure: str | None = None
        outage_said_at: float | None = None
        while not self._stopping:
            self._running.add(job.name)
            try:
                with JOBS.round(job.name, job.interval_seconds) as job_round:  # its metrics
                    job_round.ran = await self.run_once(job)
                last_failure = None
                if outage_said_at is not None:
                    log.info("job %s runs again: the database is back", job.name)
                    outage_said_at = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = brief_error(exc)
                if database_unavailable(exc):
                    now = time.monotonic()
                    if outage_said_at is None or now - outage_said_at >= _OUTAGE_LINE_SECONDS:
                        log.warning(
                            "job %s: the database is unavailable (%s); it tries again every %g s",
                            job.name,
                            failure,
                            job.interval_seconds,
                        )
                        outage_said_at = now
                elif failure != last_failure:
                    log.exception("job %s failed; it runs again in %.0f s", job.name, job.interval_seconds)
                else:
                    log.warning(
                        "job %s failed again (%s); it runs again in %.0f s",
                        job.name,
                        failure,
                        job.interval_seconds,
                    )
                last_failure = failure
            finally:
                self._running.discard(job.name)
            if self._stopping:
                return
            await asyncio.sleep(job.interval_seconds)

    @asynccontextmanager
    async def _lease(self, name: str) -> AsyncIterator[bool]:
        local = self._local_locks.setdefault(name, asyncio.Lock())
        if local.locked():
            yield False
            return
        async with local:
            if self._db.is_sqlite:
                yield True
                return
            key = _lock_key(name)
            async with self._db.engine.connect() as conn:
                held = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
                await conn.commit()
                try:
                    yield held
                finally:
                    if held:
                        await _unlock(conn, key)


async def _unlock(conn: AsyncConnection, key: int) -> None:
    try:
        await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        await conn.commit()
    except DBAPIError as exc:
        # The lease's connection died under the run (the alerts loop holds it for the process's
        # life, across a database restart): its session's lock went with it, nothing to release.
        if not database_unavailable(exc):
            raise
