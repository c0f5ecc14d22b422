"""The AI ingest's SQL, in the group's transaction (nothing here commits): one implementation per
database, chosen by `ingest_store`. PostgreSQL's is raw psycopg on the hot path (arrays unnested,
one statement per step, prepared by the driver); SQLite's is SQLAlchemy Core (one writer at a time:
what it reads after its first write stays true until it commits)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Protocol, cast

import orjson
import psycopg
from sqlalchemy import Table, delete, insert, select, text, tuple_, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import psycopg_connection
from control_plane.domain import histogram
from control_plane.models import AiDailyUsage, AiEvent, AiUsageRollup, Monitor, Organization

# An event row, in this order (PostgreSQL's arrays, SQLite's dicts).
EVENT_COLUMNS = (
    "id",
    "org_id",
    "monitor_id",
    "client_event_id",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "price_version",
    "latency_ms",
    "status_code",
    "status",
    "error",
    "prompt_hash",
    "metadata",
    "rag_docs_retrieved",
    "rag_avg_relevance",
    "rag_retrieval_ms",
    "rag_context_tokens",
    "source",
)
EventRow = tuple[Any, ...]  # EVENT_COLUMNS' values; created_at is the group's


@dataclass(frozen=True, slots=True)
class MonitorRow:
    id: str
    org_id: str
    type: str
    is_active: bool
    plan: str


@dataclass(slots=True)
class RollupDelta:
    """What a group adds to one (monitor, hour, provider, model) rollup row."""

    org_id: str
    events: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_events: int = 0
    latency_sum_ms: float = 0.0
    latency_histogram: dict[str, int] = field(default_factory=dict)
    rag_events: int = 0
    rag_docs_events: int = 0
    rag_docs_sum: int = 0
    rag_relevance_events: int = 0
    rag_relevance_sum: float = 0.0
    rag_retrieval_events: int = 0
    rag_retrieval_ms_sum: float = 0.0
    rag_context_events: int = 0
    rag_context_tokens_sum: int = 0


ROLLUP_KEY = ("monitor_id", "hour", "provider", "model")
ROLLUP_SUMS = tuple(f.name for f in fields(RollupDelta) if f.name not in ("org_id", "latency_histogram"))
RollupKey = tuple[str, datetime, str, str]
_ROLLUPS = cast(Table, AiUsageRollup.__table__)
StoredEvent = tuple[str, float | None]  # id, cost_usd


@dataclass(frozen=True, slots=True)
class GroupWrites:
    """What a group stores: its events (all stamped `created_at`), what they add to each rollup
    row, and to each organization's counter of `day`."""

    rows: Sequence[EventRow]
    created_at: datetime
    rollups: dict[RollupKey, RollupDelta]
    day: datetime
    added: dict[str, int]


class AiIngestStore(Protocol):
    """The group's steps, in its transaction."""

    async def open_group(
        self, session: AsyncSession, monitor_ids: Sequence[str], day: datetime
    ) -> tuple[dict[str, MonitorRow], dict[str, int]]:
        """These monitors (those that exist) with their organization's plan, none of them deleted
        before the transaction ends; and their organizations' events of `day` so far, each
        counter's row locked (created at 0) until then."""
        ...

    async def stored_events(
        self, session: AsyncSession, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredEvent]:
        """Events already stored under these (monitor_id, client_event_id)."""
        ...

    async def write_and_commit(self, session: AsyncSession, writes: GroupWrites) -> None:
        """Insert the events, add to the rollups (rows created when missing) and the counters, and
        commit the group's transaction: the one step here that commits."""
        ...

    def retries(self, exc: BaseException) -> bool:
        """Whether the group's transaction, failed with `exc`, succeeds when run again from the start."""
        ...


def ingest_store(session_or_dialect: AsyncSession | str) -> AiIngestStore:
    dialect = (
        session_or_dialect
        if isinstance(session_or_dialect, str)
        else session_or_dialect.get_bind().dialect.name
    )
    if dialect == "postgresql":
        return PostgresIngestStore()
    if dialect == "sqlite":
        return SqliteIngestStore()
    raise ValueError(f"no AI ingest store for the database dialect {dialect!r}: use SQLite or PostgreSQL")


# --- PostgreSQL -------------------------------------------------------------------------------

# The monitors held FOR KEY SHARE (a deletion waits for the commit), their organizations' counters
# created or locked (DO UPDATE to itself, rather than DO NOTHING: it locks a row that exists, and
# RETURNING sees it), in one round trip.
_PG_OPEN_GROUP = """
WITH m AS (
    SELECT m.id, m.org_id, m.type, m.is_active, o.plan
    FROM monitors m JOIN organizations o ON o.id = m.org_id
    WHERE m.id IN (SELECT json_array_elements_text(%s::json))
    FOR KEY SHARE OF m
), d AS (
    INSERT INTO ai_daily_usage (org_id, day, events)
    SELECT DISTINCT org_id, %s::timestamptz, 0 FROM m ORDER BY org_id
    ON CONFLICT (org_id, day) DO UPDATE SET events = ai_daily_usage.events
    RETURNING org_id, events
)
SELECT m.id, m.org_id, m.type, m.is_active, m.plan, d.events FROM m JOIN d ON d.org_id = m.org_id
"""
# A retried group's eventIds, each looked up on its own in the (monitor_id, client_event_id) unique
# index. As `(monitor_id, client_event_id) IN (...)` the planner filtered every event of the monitor
# against the whole list whenever its statistics were behind the table (one busy monitor's events
# all share its id): 1.9 s a group of 2,000 at 95,000 events, growing with the table, until the
# ingest committed a fraction of what it had (bench/overload.py). A unique index's equality is a
# point lookup whatever the statistics say.
_PG_STORED_EVENTS = """
SELECT k.m, k.e, ev.id, ev.cost_usd
FROM json_to_recordset(%s::json) AS k(m text, e text)
CROSS JOIN LATERAL (
    SELECT a.id, a.cost_usd FROM ai_events a WHERE a.monitor_id = k.m AND a.client_event_id = k.e
) ev
"""
# Rows travel as one JSON array (orjson writes it in microseconds; the server parses it into
# records): psycopg's array parameters are dumped in Python, a few milliseconds a group.
_PG_INSERT_EVENTS = (
    f"INSERT INTO ai_events ({', '.join(EVENT_COLUMNS)}, created_at) "
    f"SELECT {', '.join(EVENT_COLUMNS)}, %(created_at)s "
    "FROM json_populate_recordset(NULL::ai_events, %(events)s::json)"
)
_PG_ROLLUP_COLUMNS = (*ROLLUP_KEY, "org_id", *ROLLUP_SUMS, "latency_histogram")
# Histograms merge in SQL (bucket by bucket): a concurrent group's addition is never overwritten.
_PG_ADD_ROLLUPS = f"""
INSERT INTO ai_usage_rollups AS r ({", ".join(_PG_ROLLUP_COLUMNS)})
SELECT {", ".join(_PG_ROLLUP_COLUMNS)} FROM json_populate_recordset(NULL::ai_usage_rollups, %(rollups)s::json)
ORDER BY {", ".join(ROLLUP_KEY)}
ON CONFLICT ({", ".join(ROLLUP_KEY)}) DO UPDATE SET
    {", ".join(f"{c} = r.{c} + EXCLUDED.{c}" for c in ROLLUP_SUMS)},
    latency_histogram = (
        SELECT json_object_agg(k, n) FROM (
            SELECT k, sum(v::bigint) AS n FROM (
                SELECT key, value FROM json_each_text(r.latency_histogram)
                UNION ALL SELECT key, value FROM json_each_text(EXCLUDED.latency_histogram)
            ) AS b(k, v) GROUP BY k
        ) AS merged
    )
"""
_PG_ADD_DAILY = """
UPDATE ai_daily_usage d SET events = d.events + a.n::int
FROM json_each_text(%(added)s::json) AS a(org_id, n)
WHERE d.org_id = a.org_id AND d.day = %(day)s
"""
# The group's writes in one statement (one round trip): data-modifying CTEs all run, whatever the
# outer SELECT reads.
_PG_WRITE = f"""
WITH new_events AS ({_PG_INSERT_EVENTS}),
added_rollups AS ({_PG_ADD_ROLLUPS}),
added_daily AS ({_PG_ADD_DAILY})
SELECT 1
"""


def _values(delta: RollupDelta) -> dict[str, Any]:
    # Not dataclasses.asdict: it deep-copies the histogram, a tenth of a millisecond a group.
    return {name: getattr(delta, name) for name in _DELTA_FIELDS}


_DELTA_FIELDS = tuple(f.name for f in fields(RollupDelta))


class PostgresIngestStore:
    async def open_group(
        self, session: AsyncSession, monitor_ids: Sequence[str], day: datetime
    ) -> tuple[dict[str, MonitorRow], dict[str, int]]:
        driver = await psycopg_connection(session)
        async with driver.pipeline():  # BEGIN goes with the statement, not a round trip before it
            cursor = await driver.execute(_PG_OPEN_GROUP, (orjson.dumps(list(monitor_ids)).decode(), day))
        monitors: dict[str, MonitorRow] = {}
        used: dict[str, int] = {}
        for row in await cursor.fetchall():
            monitors[row[0]] = MonitorRow(*row[:5])
            used[row[1]] = int(row[5])
        return monitors, used

    async def stored_events(
        self, session: AsyncSession, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredEvent]:
        if not keys:
            return {}
        driver = await psycopg_connection(session)
        cursor = await driver.execute(
            _PG_STORED_EVENTS, (orjson.dumps([{"m": m, "e": e} for m, e in keys]).decode(),)
        )
        return {(row[0], row[1]): (row[2], row[3]) for row in await cursor.fetchall()}

    async def write_and_commit(self, session: AsyncSession, writes: GroupWrites) -> None:
        if not writes.rows:
            await session.commit()
            return
        # Sorted (in SQL too): every writer locks rollup rows in one order, so two groups never deadlock.
        rollups = [
            {"monitor_id": key[0], "hour": key[1], "provider": key[2], "model": key[3], **_values(delta)}
            for key, delta in sorted(writes.rollups.items())
        ]
        driver = await psycopg_connection(session)
        # The statement and the COMMIT in one round trip. (The session's own commit, after, finds
        # the transaction over and sends nothing.)
        async with driver.pipeline():
            await driver.execute(
                _PG_WRITE,
                {
                    "events": orjson.dumps(
                        [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in writes.rows]
                    ).decode(),
                    "created_at": writes.created_at,
                    "rollups": orjson.dumps(rollups).decode(),
                    "added": orjson.dumps(writes.added).decode(),
                    "day": writes.day,
                },
            )
            await driver.commit()
        await session.commit()

    def retries(self, exc: BaseException) -> bool:
        # A group racing another process's with the same eventId meets its unique constraint: run
        # again, it finds that event stored.
        error = exc.orig if isinstance(exc, DBAPIError) else exc
        return isinstance(
            error,
            psycopg.errors.SerializationFailure
            | psycopg.errors.DeadlockDetected
            | psycopg.errors.UniqueViolation,
        )


# --- SQLite -----------------------------------------------------------------------------------


# As _PG_STORED_EVENTS: each key a point lookup in the unique index (CROSS JOIN keeps the keys the
# outer loop); a row-value IN list scanned the whole table.
_SQLITE_STORED_EVENTS = text(
    """
    SELECT json_extract(k.value, '$[0]'), json_extract(k.value, '$[1]'), a.id, a.cost_usd
    FROM json_each(:keys) AS k
    CROSS JOIN ai_events a
        ON a.monitor_id = json_extract(k.value, '$[0]') AND a.client_event_id = json_extract(k.value, '$[1]')
    """
)


class SqliteIngestStore:
    async def open_group(
        self, session: AsyncSession, monitor_ids: Sequence[str], day: datetime
    ) -> tuple[dict[str, MonitorRow], dict[str, int]]:
        monitors = await self._monitors(session, monitor_ids)
        used = await self._lock_daily(session, sorted({m.org_id for m in monitors.values()}), day)
        return monitors, used

    async def write_and_commit(self, session: AsyncSession, writes: GroupWrites) -> None:
        if writes.rows:
            await self._insert_events(session, writes.rows, writes.created_at)
            await self._add_rollups(session, writes.rollups)
            await self._add_daily(session, writes.day, writes.added)
        await session.commit()

    async def _monitors(self, session: AsyncSession, monitor_ids: Sequence[str]) -> dict[str, MonitorRow]:
        # No lock to take: a monitor deleted before this group commits fails its rollup's foreign
        # key, and the group runs again without it (retries).
        rows = await session.execute(
            select(Monitor.id, Monitor.org_id, Monitor.type, Monitor.is_active, Organization.plan)
            .join(Organization, Organization.id == Monitor.org_id)
            .where(Monitor.id.in_(list(monitor_ids)))
        )
        return {row[0]: MonitorRow(row[0], row[1], row[2], bool(row[3]), row[4]) for row in rows}

    async def _lock_daily(
        self, session: AsyncSession, org_ids: Sequence[str], day: datetime
    ) -> dict[str, int]:
        if not org_ids:
            return {}
        # The insert is the transaction's first write: from here on it is the database's only writer.
        await session.execute(
            sqlite.insert(AiDailyUsage).on_conflict_do_nothing(),
            [{"org_id": org_id, "day": day, "events": 0} for org_id in sorted(org_ids)],
        )
        rows = await session.execute(
            select(AiDailyUsage.org_id, AiDailyUsage.events).where(
                AiDailyUsage.org_id.in_(list(org_ids)), AiDailyUsage.day == day
            )
        )
        return {row[0]: int(row[1]) for row in rows}

    async def stored_events(
        self, session: AsyncSession, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredEvent]:
        if not keys:
            return {}
        rows = await session.execute(_SQLITE_STORED_EVENTS, {"keys": orjson.dumps(list(keys)).decode()})
        return {(row[0], row[1]): (row[2], row[3]) for row in rows}

    async def _insert_events(
        self, session: AsyncSession, rows: Sequence[EventRow], created_at: datetime
    ) -> None:
        if not rows:
            return
        names = [("event_metadata" if c == "metadata" else c) for c in EVENT_COLUMNS]
        values = [{**dict(zip(names, row, strict=True)), "created_at": created_at} for row in rows]
        await session.execute(insert(AiEvent), values)

    async def _add_rollups(self, session: AsyncSession, deltas: dict[RollupKey, RollupDelta]) -> None:
        if not deltas:
            return
        # Read, add, write: this transaction is the only writer since lock_daily.
        table = _ROLLUPS
        columns = [table.c[name] for name in ROLLUP_KEY]
        existing = await session.execute(
            select(table).where(tuple_(*columns).in_([tuple(key) for key in deltas]))
        )
        merged: dict[RollupKey, dict[str, Any]] = {}
        for found in existing.mappings():
            merged[(found["monitor_id"], found["hour"], found["provider"], found["model"])] = dict(found)
        values: list[dict[str, Any]] = []
        for key in sorted(deltas):
            delta = deltas[key]
            row = merged.get(key)
            if row is None:
                row = {
                    **dict(zip(ROLLUP_KEY, key, strict=True)),
                    "org_id": delta.org_id,
                    "latency_histogram": {},
                }
                row.update({name: 0 for name in ROLLUP_SUMS})
            for name in ROLLUP_SUMS:
                row[name] = (row[name] or 0) + getattr(delta, name)
            row["latency_histogram"] = histogram.merged(
                [row["latency_histogram"] or {}, delta.latency_histogram]
            )
            values.append(row)
        statement = sqlite.insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=list(ROLLUP_KEY),
            set_={name: statement.excluded[name] for name in (*ROLLUP_SUMS, "latency_histogram")},
        )
        await session.execute(statement, values)

    async def _add_daily(self, session: AsyncSession, day: datetime, added: dict[str, int]) -> None:
        for org_id, count in sorted(added.items()):
            await session.execute(
                update(AiDailyUsage)
                .where(AiDailyUsage.org_id == org_id, AiDailyUsage.day == day)
                .values(events=AiDailyUsage.events + count)
            )

    def retries(self, exc: BaseException) -> bool:
        # A monitor deleted under the group (its rollup's foreign key), an eventId another process
        # stored first, or another process's write lock held past the busy timeout.
        error = exc.orig if isinstance(exc, DBAPIError) else exc
        if isinstance(error, sqlite3.IntegrityError):
            return True
        return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


async def delete_ai_events_of(session: AsyncSession, monitor_id: str, *, batch_size: int = 5000) -> int:
    """Delete a deleted monitor's events, a committed batch at a time (its rollups went with it:
    their foreign key cascades). After the deletion's commit: no group stores one for it after."""
    deleted = 0
    while True:
        doomed = select(AiEvent.id).where(AiEvent.monitor_id == monitor_id).limit(batch_size)
        result = await session.execute(delete(AiEvent).where(AiEvent.id.in_(doomed.scalar_subquery())))
        await session.commit()
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        deleted += count
        if count < batch_size:
            return deleted
