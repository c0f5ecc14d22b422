"""Check results in: one batch insert, idempotent by result id, keeping rollups and lastCheck current.

Every writer of results (agents over gRPC, tests, benchmarks) goes through `record_results`, so
each monitor's newest result and the rollup backlog are always in step with the raw rows; the
hourly/daily rollups are the backlog folded in (`fold_backlog`), and their readers add what is
still queued, so what they report is always every stored result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from sqlalchemy import Table, bindparam, delete, insert, or_, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import histogram
from control_plane.models import CheckResult, CheckRollup, CheckScreenshot, Monitor, RollupBacklog
from control_plane.services import results_pg

if TYPE_CHECKING:
    from control_plane.services.last_checks import LastCheck, LastCheckWriter

T = TypeVar("T")

PHASES = ("dns", "tcp", "tls", "ttfb", "download", "total")


@dataclass(frozen=True, slots=True)
class ResultIn:
    """A validated check result, as the agent protocol's conversion module produces it."""

    id: str
    monitor_id: str
    region: str
    status: str  # UP | DOWN
    checked_at: datetime
    response_time: float | None = None
    status_code: int | None = None
    error_kind: str | None = None
    error_message: str | None = None
    dns: float | None = None
    tcp: float | None = None
    tls: float | None = None
    ttfb: float | None = None
    download: float | None = None
    total: float | None = None
    size: int | None = None
    details: dict[str, Any] | None = None
    scheduled_at: datetime | None = None
    agent_id: str | None = None
    screenshot_png: bytes | None = None

    def measures(self) -> dict[str, float]:
        """The timed measures present in this result; `total` falls back to the response time."""
        values = {phase: getattr(self, phase) for phase in PHASES}
        if values["total"] is None:
            values["total"] = self.response_time
        return {name: float(value) for name, value in values.items() if value is not None}


@dataclass(slots=True)
class RecordOutcome:
    inserted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # already stored: a replay
    orphaned: list[str] = field(default_factory=list)  # their monitor no longer exists


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


def bucket_start(moment: datetime, granularity: str) -> datetime:
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


async def record_results(
    session: AsyncSession, results: Sequence[ResultIn], *, last_checks: LastCheckWriter | None = None
) -> RecordOutcome:
    """Store a batch in one transaction (committed here). Replayed ids are skipped, not counted twice.

    The new results are queued for their rollups in the same transaction (`fold_backlog` adds them
    up later, in bulk); readers of rollups count what is queued, so they see every result at once.
    Their monitors' lastCheck is written before this returns, or, given a `last_checks` writer
    (agents' ingestion), handed to it to write shortly after.
    """
    unique = list({result.id: result for result in results}.values())
    if not unique:
        return RecordOutcome()
    # PostgreSQL: a concurrent batch (a replay racing its original) may store some of these ids
    # after this one looked; again from the start, they are found and skipped.
    return await _retried(
        session,
        lambda: _record(session, unique, last_checks),
        lambda exc: isinstance(exc, psycopg.errors.UniqueViolation | psycopg.errors.DeadlockDetected),
    )


_ATTEMPTS = 3


async def _retried(
    session: AsyncSession, attempt: Callable[[], Awaitable[T]], retry_on: Callable[[Exception], bool]
) -> T:
    """`attempt()`, a transaction committed by it; rolled back and run again (up to _ATTEMPTS
    times in all) when it fails with an error `retry_on` says a fresh start resolves."""
    for remaining in range(_ATTEMPTS - 1, -1, -1):
        try:
            return await attempt()
        except Exception as exc:
            if not remaining or not retry_on(exc):
                raise
            await session.rollback()
    raise AssertionError("unreachable")


async def exclude_result_writers(session: AsyncSession) -> None:
    """Wait for batches of results being written to commit, and keep new ones waiting until this
    transaction ends. A monitor is deleted under it: a batch either committed before (and its
    results are deleted with the monitor's) or finds the monitor gone. (SQLite has one writer.)"""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": results_pg.RESULT_WRITERS_LOCK}
        )


async def delete_results_of(session: AsyncSession, monitor_id: str, *, batch_size: int = 5000) -> int:
    """Delete a deleted monitor's queued and stored results (and their screenshots), a committed
    batch at a time. Not in the deletion's transaction: a fold holding some of the queued rows
    would wait for it while it waited for the fold."""
    deleted = 0
    await session.execute(delete(RollupBacklog).where(RollupBacklog.monitor_id == monitor_id))
    await session.commit()
    while True:
        doomed = select(CheckResult.id).where(CheckResult.monitor_id == monitor_id).limit(batch_size)
        result = await session.execute(
            delete(CheckResult).where(CheckResult.id.in_(doomed.scalar_subquery()))
        )
        await session.commit()
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        deleted += count
        if count < batch_size:
            return deleted


async def orphaned_monitor_ids(session: AsyncSession) -> list[str]:
    """Ids of deleted monitors that still have results: what a deletion left when its process
    stopped before deleting them (or, on SQLite, a batch that looked just before the deletion).
    Walks the (monitor_id, checked_at) index one monitor at a time, not the results."""
    rows = await session.execute(
        text(
            """
            WITH RECURSIVE ids(monitor_id) AS (
                SELECT (SELECT monitor_id FROM check_results ORDER BY monitor_id LIMIT 1)
                UNION ALL
                SELECT (
                    SELECT monitor_id FROM check_results
                    WHERE monitor_id > ids.monitor_id ORDER BY monitor_id LIMIT 1
                )
                FROM ids WHERE ids.monitor_id IS NOT NULL
            )
            SELECT monitor_id FROM ids
            WHERE monitor_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM monitors WHERE monitors.id = ids.monitor_id)
            """
        )
    )
    return [row[0] for row in rows]


async def _record(
    session: AsyncSession, unique: list[ResultIn], last_checks: LastCheckWriter | None
) -> RecordOutcome:
    outcome = RecordOutcome()
    monitor_ids = sorted({r.monitor_id for r in unique})
    fast = session.get_bind().dialect.name == "postgresql"
    if fast:
        existing = await results_pg.existing_monitors(session, monitor_ids)
    else:  # SQLite: one writer at a time, so nothing is deleted meanwhile
        existing = set()
        for start in range(0, len(monitor_ids), 500):  # IN lists under SQLite's variable limit
            chunk = monitor_ids[start : start + 500]
            existing.update(await session.scalars(select(Monitor.id).where(Monitor.id.in_(chunk))))
    live = [r for r in unique if r.monitor_id in existing]
    outcome.orphaned = [r.id for r in unique if r.monitor_id not in existing]
    fresh: list[ResultIn] = []
    if live:
        inserted_ids = await (results_pg.insert_new(session, live) if fast else _insert_new(session, live))
        fresh = [r for r in live if r.id in inserted_ids]
        outcome.inserted = [r.id for r in fresh]
        outcome.duplicates = [r.id for r in live if r.id not in inserted_ids]
        if fresh:
            screenshots = [
                {"check_id": r.id, "png": r.screenshot_png, "created_at": r.checked_at}
                for r in fresh
                if r.screenshot_png
            ]
            if screenshots:
                await session.execute(insert(CheckScreenshot), screenshots)
            if not fast:  # PostgreSQL's insert_new queued them in the statement that inserted them
                await session.execute(insert(RollupBacklog), [_backlog_row(r) for r in fresh])
    await session.commit()
    if fresh:
        newest = _newest_per_monitor(fresh)
        if last_checks is not None:
            last_checks.note(newest.items())
        else:
            await write_last_checks(session, newest)
    return outcome


async def write_last_checks(session: AsyncSession, newest: dict[str, LastCheck]) -> None:
    """Monitors' newest results into their lastCheck (newest wins), committed here."""
    if session.get_bind().dialect.name == "postgresql":
        await results_pg.update_last_checks(session, newest)
    else:
        await _update_last_checks(session, newest)
    await session.commit()


def _measure_columns(r: ResultIn) -> dict[str, Any]:
    """A result's measures by column name, the same in check_results and rollup_backlog."""
    return {
        "response_time": r.response_time,
        "dns_ms": r.dns,
        "tcp_ms": r.tcp,
        "tls_ms": r.tls,
        "ttfb_ms": r.ttfb,
        "download_ms": r.download,
        "total_ms": r.total,
        "size_bytes": r.size,
    }


def _backlog_row(r: ResultIn) -> dict[str, Any]:
    return {
        "monitor_id": r.monitor_id,
        "checked_at": r.checked_at,
        "result_id": r.id,
        "region": r.region,
        "up": r.status == "UP",
        **_measure_columns(r),
    }


async def fold_backlog(session: AsyncSession, *, limit: int) -> int:
    """Add up to `limit` queued results to their hour's and day's rollups and unqueue them, in one
    transaction (committed here). Returns how many were taken; 0 when the backlog is empty.

    Results of monitors deleted meanwhile are dropped. One fold at a time (the worker's lease);
    a second one running anyway would only find the rows the first took already gone.
    """
    # A monitor deleted after this fold found it fails the rollups' foreign key; again from the
    # start, its queued results are found orphaned and dropped.
    return await _retried(session, lambda: _fold(session, limit), _is_foreign_key_violation)


def _is_foreign_key_violation(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return "FOREIGN KEY" in str(exc.orig)  # SQLite's
    return isinstance(exc, psycopg.errors.ForeignKeyViolation)


async def _fold(session: AsyncSession, limit: int) -> int:
    if session.get_bind().dialect.name != "postgresql":
        return await _fold_backlog_sqlite(session, limit)
    taken, deltas = await results_pg.take_backlog(session, limit)
    if deltas:
        await results_pg.add_rollups(session, deltas)
    await session.commit()
    return taken


async def _queued(session: AsyncSession, limit: int) -> Sequence[Any]:
    return (await session.execute(select(_table(RollupBacklog)).limit(limit))).all()


_SQLITE_KEYS_AT_ONCE = 200  # rollup keys per statement: 4 variables each, under SQLite's old 999


async def _fold_backlog_sqlite(session: AsyncSession, limit: int) -> int:
    table = _table(RollupBacklog)
    rows = await _queued(session, limit)
    if not rows:
        await session.commit()
        return 0
    monitor_ids = sorted({row.monitor_id for row in rows})
    existing: set[str] = set()
    for start in range(0, len(monitor_ids), 500):
        chunk = monitor_ids[start : start + 500]
        existing.update(await session.scalars(select(Monitor.id).where(Monitor.id.in_(chunk))))
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
    deltas = _rollup_deltas(queued)
    keys = sorted(deltas)
    for start in range(0, len(keys), _SQLITE_KEYS_AT_ONCE):
        await _update_rollups(
            session, {key: deltas[key] for key in keys[start : start + _SQLITE_KEYS_AT_ONCE]}
        )
    # By primary key, not rowid: SQLite reuses the rowids of deleted rows, and results stored since
    # the read (another connection) may carry them.
    primary_key = tuple_(table.c.monitor_id, table.c.checked_at, table.c.result_id)
    taken = [(row.monitor_id, row.checked_at, row.result_id) for row in rows]
    for start in range(0, len(taken), _SQLITE_KEYS_AT_ONCE):
        await session.execute(
            table.delete().where(primary_key.in_(taken[start : start + _SQLITE_KEYS_AT_ONCE]))
        )
    await session.commit()
    return len(rows)


def _insert_statement(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(CheckResult).on_conflict_do_nothing(index_elements=[CheckResult.id])


async def _insert_new(session: AsyncSession, results: list[ResultIn]) -> set[str]:
    rows = [
        {
            "id": r.id,
            "monitor_id": r.monitor_id,
            "region": r.region,
            "status": r.status,
            "status_code": r.status_code,
            "error_kind": r.error_kind,
            "error_message": r.error_message,
            **_measure_columns(r),
            "details": r.details,
            "checked_at": r.checked_at,
            "scheduled_at": r.scheduled_at,
            "agent_id": r.agent_id,
        }
        for r in results
    ]
    statement = _insert_statement(session).returning(CheckResult.id)
    inserted = await session.execute(statement, rows)
    return set(inserted.scalars())


@dataclass(slots=True)
class _RollupDelta:
    count: int = 0
    up_count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, histogram.Histogram] = field(default_factory=dict)

    def add(self, up: bool, measured: list[tuple[str, float, str]], size: int | None) -> None:
        """One result: its timed measures as (name, value, histogram bucket), and its size."""
        self.count += 1
        self.up_count += up
        sums, counts, histograms = self.sums, self.counts, self.histograms
        for name, value, bucket in measured:
            sums[name] = sums.get(name, 0.0) + value
            counts[name] = counts.get(name, 0) + 1
            buckets = histograms.get(name)
            if buckets is None:
                buckets = histograms[name] = {}
            buckets[bucket] = buckets.get(bucket, 0) + 1
        if size is not None:
            sums["size"] = sums.get("size", 0.0) + size
            counts["size"] = counts.get("size", 0) + 1


RollupKey = tuple[str, str, str, datetime]


def _rollup_deltas(results: list[ResultIn]) -> dict[RollupKey, _RollupDelta]:
    deltas: dict[RollupKey, _RollupDelta] = {}
    for result in results:
        # Measured once, added to the hour's and the day's rollup.
        measured = [
            (name, value, str(histogram.bucket_of(value))) for name, value in result.measures().items()
        ]
        up = result.status == "UP"
        hour = bucket_start(result.checked_at, "hour")
        for granularity, start in (("hour", hour), ("day", hour.replace(hour=0))):
            key = (result.monitor_id, result.region, granularity, start)
            delta = deltas.get(key)
            if delta is None:
                delta = deltas[key] = _RollupDelta()
            delta.add(up, measured, result.size)
    return deltas


def _newest_per_monitor(results: list[ResultIn]) -> dict[str, LastCheck]:
    newest: dict[str, LastCheck] = {}
    for result in results:
        current = newest.get(result.monitor_id)
        if current is None or result.checked_at > current[2]:
            newest[result.monitor_id] = (result.status, result.response_time, result.checked_at)
    return newest


async def _update_rollups(session: AsyncSession, deltas: dict[RollupKey, _RollupDelta]) -> None:
    keys = sorted(deltas)
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    # Make sure every row exists, then lock them in key order (no deadlocks between batches).
    await session.execute(
        module.insert(CheckRollup).on_conflict_do_nothing(),
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
        for name, value in delta.sums.items():
            sums[name] = sums.get(name, 0.0) + value
        for name, value in delta.counts.items():
            counts[name] = counts.get(name, 0) + value
        for name, h in delta.histograms.items():
            histogram.merge_into(histograms.setdefault(name, {}), h)
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


async def _update_last_checks(session: AsyncSession, newest: dict[str, LastCheck]) -> None:
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
            {"k_id": monitor_id, "status": status, "response_time": response_time, "k_checked_at": checked_at}
            for monitor_id, (status, response_time, checked_at) in sorted(newest.items())
        ],
    )


async def delete_expired(
    session: AsyncSession,
    *,
    now: datetime,
    retention: timedelta,
    rollup_retention: timedelta,
    batch_size: int,
) -> int:
    """Delete one batch of raw results past retention (and rollups past theirs); returns rows deleted.

    Small batches keep each transaction short, so ingestion never waits long behind retention.
    """
    cutoff = now - retention
    doomed = select(CheckResult.id).where(CheckResult.checked_at < cutoff).limit(batch_size)
    result = await session.execute(delete(CheckResult).where(CheckResult.id.in_(doomed.scalar_subquery())))
    deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
    rollup_cutoff = now - rollup_retention
    doomed_rollups = (
        select(CheckRollup.monitor_id, CheckRollup.region, CheckRollup.granularity, CheckRollup.bucket_start)
        .where(CheckRollup.bucket_start < rollup_cutoff)
        .limit(batch_size)
    )
    rollups = await session.execute(
        delete(CheckRollup).where(
            tuple_(
                CheckRollup.monitor_id, CheckRollup.region, CheckRollup.granularity, CheckRollup.bucket_start
            ).in_(doomed_rollups)
        )
    )
    deleted += int(rollups.rowcount or 0)  # type: ignore[attr-defined]
    await session.commit()
    return deleted
