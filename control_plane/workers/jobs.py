"""The periodic jobs a replica runs, wired from settings."""

from __future__ import annotations

from control_plane.db import Database
from control_plane.settings import Settings
from control_plane.workers.retention import apply_retention
from control_plane.workers.rollups import fold_rollups
from control_plane.workers.runner import PeriodicJob, WorkerRunner


def build_runner(db: Database, settings: Settings) -> WorkerRunner:
    async def retention() -> None:
        await apply_retention(db, settings)

    async def rollups() -> None:
        await fold_rollups(db)

    return WorkerRunner(
        db,
        [
            PeriodicJob("retention", settings.retention_interval_seconds, retention),
            PeriodicJob("rollups", settings.rollup_fold_seconds, rollups),
        ],
    )
