"""The periodic jobs a replica runs, wired from settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from control_plane.ai.budgets.worker import check_budgets
from control_plane.ai.insights.job import generate_insights
from control_plane.alerts.job import AlertsLoop
from control_plane.core.ids import new_id
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.heartbeats.deadlines import sweep_heartbeats
from control_plane.incidents import IncidentEngine
from control_plane.incidents.sweep import sweep
from control_plane.settings import Settings
from control_plane.status_pages.notify import notify_subscribers
from control_plane.workers.retention import apply_retention
from control_plane.workers.rollups import fold_rollups
from control_plane.workers.runner import PeriodicJob, WorkerRunner

QUEUE_CHUNK = 5000  # results the incident engine takes from its queue in one transaction


def build_runner(db: Database, settings: Settings, clock: Callable[[], datetime] = utcnow) -> WorkerRunner:
    """`clock` is the runtime's (tests move it)."""
    engine = IncidentEngine(clock)

    alerts = AlertsLoop(db, settings, clock)

    async def incident_queue() -> None:
        # Agents' results are acknowledged once stored; they are judged here, in chunks.
        while True:
            async with db.session() as session:
                evaluated = await engine.evaluate_queued(session, limit=QUEUE_CHUNK)
            if evaluated.opened or evaluated.resolved:
                alerts.wake()
            if evaluated.results < QUEUE_CHUNK:
                return

    async def incidents() -> None:
        async with db.session() as session:
            await sweep(session, engine, now=clock())

    async def heartbeats() -> None:
        async with db.session() as session:
            if await sweep_heartbeats(session, now=clock()):
                alerts.wake()  # a late heartbeat's incident goes out now, not at the next tick

    async def retention() -> None:
        await apply_retention(db, settings)

    async def rollups() -> None:
        await fold_rollups(db)

    async def ai_insights() -> None:
        await generate_insights(db, now=clock())

    async def ai_budgets() -> None:
        await check_budgets(db, settings, now=clock())

    async def status_page_subscribers() -> None:
        await notify_subscribers(db, settings, now=clock())

    return WorkerRunner(
        db,
        [
            PeriodicJob("retention", settings.retention_interval_seconds, retention),
            PeriodicJob("rollups", settings.rollup_fold_seconds, rollups),
            # On every replica at once (a name of its own, so no lease keeps the others out): the
            # queue is taken with SKIP LOCKED, and every state change is compare-and-set.
            PeriodicJob(f"incident-queue-{new_id('w')}", settings.incident_queue_seconds, incident_queue),
            PeriodicJob("incidents", settings.incident_sweep_seconds, incidents),
            PeriodicJob("heartbeats", settings.heartbeat_sweep_seconds, heartbeats),
            PeriodicJob("ai-insights", settings.ai_insights_seconds, ai_insights),
            # Under the lease, one replica a round; each mail's mark is compare-and-set besides.
            PeriodicJob("ai-budgets", settings.ai_budget_seconds, ai_budgets),
            # Under the lease, one replica a round; each mail is claimed by a unique row besides.
            PeriodicJob(
                "status-page-subscribers", settings.status_page_notify_seconds, status_page_subscribers
            ),
            # A loop that never returns, on every replica (a name of its own, so no lease keeps the
            # others out): deliveries are claimed with SKIP LOCKED, the rest is compare-and-set.
            PeriodicJob(f"alerts-{new_id('w')}", settings.alert_delivery_seconds, alerts.run, alerts.stop),
        ],
    )
