"""SQLite's results store: multi-row statements through SQLAlchemy, with the rollups merged here.

SQLite has one writer at a time, so a batch needs no lock against a monitor's deletion, and no
concurrent batch stores its ids meanwhile. Statements keep their variables under the old limit of
999, so any SQLite build takes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, or_, select, tuple_
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.timefmt import utcnow
from control_plane.incidents.queue import backlog_row
from control_plane.models import CheckResult, CheckRollup, IncidentBacklog, Monitor, RollupBacklog
from control_plane.results.domain import (
    LastCheck,
    ResultIn,
    RollupDeltas,
    measure_columns,
    rollup_deltas,
)

_IDS_AT_ONCE = 500  # monitor ids per IN list
_KEYS_AT_ONCE = 200  # rollup keys per statement: 4 variables each


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


def incident_row(r: ResultIn, queued_at: datetime) -> dict[str, Any]:
    """The incident engine's queue row for a stored result (postgres_store.py does the same in SQL)."""
    return backlog_row(
        result_id=r.id,
        monitor_id=r.monitor_id,
        region=r.region,
        at=r.scheduled_at or r.checked_at,
        up=r.status == "UP",
        error_kind=r.error_kind,
        error_message=r.error_message,
        details=r.details,
        queued_at=queued_at,
    )


def _backlog_row(r: ResultIn) -> dict[str, Any]:
    return {
        "monitor_id": r.monitor_id,
        "checked_at": r.checked_at,
        "result_id": r.id,
        "region": r.region,
        "up": r.status == "UP",
        **measure_columns(r),
    }


class SqliteResultsStore:
    # One writer at a time: ingestion waits for the fold's transaction, so it stays short.
    fold_limit = 2_000

    async def existing_monitors(self, session: AsyncSession, monitor_ids: Sequence[str]) -> set[str]:
        # One writer at a time: nothing is deleted meanwhile.
        ordered = sorted(monitor_ids)
        existing: set[str] = set()
        for start in range(0, len(ordered), _IDS_AT_ONCE):
            chunk = ordered[start : start + _IDS_AT_ONCE]
            existing.update(await session.scalars(select(Monitor.id).where(Monitor.id.in_(chunk))))
        return existing

    async def insert_new(self, session: AsyncSession, results: Sequence[ResultIn]) -> set[str]:
        rows = [
            {
                "id": r.id,
                "monitor_id": r.monitor_id,
                "region": r.region,
                "status": r.status,
                "status_code": r.status_code,
                "error_kind": r.error_kind,
                "error_message": r.error_message,
                **measure_columns(r),
                "details": r.details,
                "checked_at": r.checked_at,
                "scheduled_at": r.scheduled_at,
                "agent_id": r.agent_id,
            }
            for r in results
        ]
        statement = (
            sqlite.insert(CheckResult)
            .on_conflict_do_nothing(index_elements=[CheckResult.id])
            .returning(CheckResult.id)
        )
        inserted = set((await session.execute(statement, rows)).scalars())
        fresh = [_backlog_row(r) for r in results if r.id in inserted]
        if fresh:
            await session.execute(insert(RollupBacklog), fresh)
            queued_at = utcnow()  # bookkeeping: the engine's sweep leaves fresh rows to their writer
            await session.execute(
                insert(IncidentBacklog), [incident_row(r, queued_at) for r in results if r.id in inserted]
            )
        return inserted

    async def take_backlog(self, session: AsyncSession, limit: int) -> tuple[int, RollupDeltas]:
        table = _table(RollupBacklog)
        rows = await self.read_backlog(session, limit)
        if not rows:
            return 0, {}
        existing = await self.existing_monitors(session, list({row.monitor_id for row in rows}))
        queued = [
            ResultIn(
                id=row.result_id,
                monitor_id=row.monitor_id,
                region=row.region,
                status="UP" if row.up else "DOWN",
                checked_at=row.checked_at,
                response_time=row.response_time,
                dns=row.dns_ms,
                tcp=row.tcp_ms,
                tls=row.tls_ms,
                ttfb=row.ttfb_ms,
                download=row.download_ms,
                total=row.total_ms,
                size=row.size_bytes,
            )
            for row in rows
            if row.monitor_id in existing
        ]
        # By primary key, not rowid: SQLite reuses the rowids of deleted rows, and results stored since
        # the read (another connection) may carry them.
        primary_key = tuple_(table.c.monitor_id, table.c.checked_at, table.c.result_id)
        taken = [(row.monitor_id, row.checked_at, row.result_id) for row in rows]
        for start in range(0, len(taken), _KEYS_AT_ONCE):
            await session.execute(table.delete().where(primary_key.in_(taken[start : start + _KEYS_AT_ONCE])))
        return len(rows), rollup_deltas(queued)

    async def read_backlog(self, session: AsyncSession, limit: int) -> Sequence[Any]:
        """Up to `limit` queued rows (what `take_backlog` unqueues, exactly these)."""
        return (await session.execute(select(_table(RollupBacklog)).limit(limit))).all()

    async def add_rollups(self, session: AsyncSession, deltas: RollupDeltas) -> None:
        keys = sorted(deltas)
        for start in range(0, len(keys), _KEYS_AT_ONCE):
            await _update_rollups(session, {key: deltas[key] for key in keys[start : start + _KEYS_AT_ONCE]})

    async def update_last_checks(self, session: AsyncSession, newest: dict[str, LastCheck]) -> None:
        table = _table(Monitor)
        statement = (
            table.update()
            .where(
                table.c.id == bindparam("k_id"),
                or_(table.c.last_checked_at.is_(None), table.c.last_checked_at <= bindparam("k_checked_at")),
            )
            .values(
                last_check_status=bindparam("status"),
                last_check_response_time=bindparam("response_time"),
                last_checked_at=bindparam("k_checked_at"),
            )
        )
        connection = await session.connection()
        await connection.execute(
            statement,
            [
                {
                    "k_id": monitor_id,
                    "status": status,
                    "response_time": response_time,
                    "k_checked_at": checked_at,
                }
                for monitor_id, (status, response_time, checked_at) in sorted(newest.items())
            ],
        )

    async def exclude_writers(self, session: AsyncSession) -> None:
        # One writer at a time already: a batch that looked just before the deletion may store
        # results for the deleted monitor, which retention's orphan walk finds.
        return None

    def retries_insert(self, exc: Exception) -> bool:
        return False  # no concurrent batch stores these ids meanwhile

    def retries_fold(self, exc: Exception) -> bool:
        # A monitor deleted after the fold found it fails the rollups' foreign key; again from the
        # start, its queued results are found orphaned and dropped.
        return isinstance(exc, IntegrityError) and "FOREIGN KEY" in str(exc.orig)


async def _update_rollups(session: AsyncSession, deltas: RollupDeltas) -> None:
    keys = sorted(deltas)
    # Make sure every row exists, then lock them in key order (no deadlocks between batches).
    await session.execute(
        sqlite.insert(CheckRollup).on_conflict_do_nothing(),
        [
            {
                "monitor_id": k[0],
                "region": k[1],
                "granularity": k[2],
                "bucket_start": k[3],
                "count": 0,
                "up_count": 0,
                "sums": {},
                "counts": {},
                "histograms": {},
            }
            for k in keys
        ],
    )
    key_columns = (
        CheckRollup.monitor_id,
        CheckRollup.region,
        CheckRollup.granularity,
        CheckRollup.bucket_start,
    )
    stored = {
        (row.monitor_id, row.region, row.granularity, row.bucket_start): row._mapping
        for row in (
            await session.execute(
                select(CheckRollup.__table__)
                .where(tuple_(*key_columns).in_(keys))
                .order_by(*key_columns)
                .with_for_update()
            )
        ).all()
    }
    updates = []
    for key in keys:
        row, delta = stored[key], deltas[key]
        sums = dict(row["sums"])
        counts = dict(row["counts"])
        histograms = {name: dict(h) for name, h in row["histograms"].items()}
        delta.add_to(sums, counts, histograms)
        updates.append(
            {
                "k_monitor_id": key[0],
                "k_region": key[1],
                "k_granularity": key[2],
                "k_bucket_start": key[3],
                "count": row["count"] + delta.count,
                "up_count": row["up_count"] + delta.up_count,
                "sums": sums,
                "counts": counts,
                "histograms": histograms,
            }
        )
    table = _table(CheckRollup)
    statement = (
        table.update()
        .where(
            table.c.monitor_id == bindparam("k_monitor_id"),
            table.c.region == bindparam("k_region"),
            table.c.granularity == bindparam("k_granularity"),
            table.c.bucket_start == bindparam("k_bucket_start"),
        )
        .values(
            count=bindparam("count"),
            up_count=bindparam("up_count"),
            sums=bindparam("sums"),
            counts=bindparam("counts"),
            histograms=bindparam("histograms"),
        )
    )
    connection = await session.connection()
    await connection.execute(statement, updates)
