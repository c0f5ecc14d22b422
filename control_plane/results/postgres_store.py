"""PostgreSQL's results store: COPY into temp tables, then set-based statements.

Multi-row INSERTs (SQLite's store) cost too much at tens of thousands of results a second. Here a
batch is COPY'd into a session temp table, then in one statement inserted and queued for its
rollups; the fold is `postgres_rollups.py`. Batches run concurrently, so they take the result
writers' lock (shared) against a monitor's deletion, and may race each other for the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import copy_rows
from control_plane.results import postgres_rollups
from control_plane.results.domain import LastCheck, ResultIn, RollupDeltas
from control_plane.results.postgres_connection import LAST_CHECKS_LOCK, RESULT_WRITERS_LOCK, driver_connection

_RESULT_COLUMNS = (
    "id, monitor_id, region, status, response_time, status_code, error_kind, error_message, dns_ms, tcp_ms,"
    " tls_ms, ttfb_ms, download_ms, total_ms, size_bytes, details, checked_at, scheduled_at, agent_id"
)
_BACKLOG_COLUMNS = (
    "monitor_id, checked_at, result_id, region, up, response_time, dns_ms, tcp_ms, tls_ms, ttfb_ms,"
    " download_ms, total_ms, size_bytes"
)

# The incident engine's queue row, as control_plane/incidents/queue.py builds it for SQLite: when
# it counts (scheduled, else checked), up or not, a failure's words, and what the engine reads of
# the details (an SSL check's expiry; a DNS check's answers, sorted by code point like Python).
_INCIDENT_COLUMNS = "result_id, monitor_id, region, checked_at, up, error, signal, queued_at"
_INCIDENT_ROW = """
    id, monitor_id, region, coalesce(scheduled_at, checked_at), status = 'UP',
    CASE WHEN status = 'UP' THEN NULL ELSE coalesce(error_message, error_kind, 'Check failed') END,
    CASE
        WHEN details::jsonb ? 'days_until_expiry' THEN json_build_object(
            'expiring', coalesce(error_kind = 'cert_expiring', false),
            'message', CASE WHEN error_kind = 'cert_expiring' THEN error_message END,
            'notAfter', details::jsonb -> 'not_after',
            'days', details::jsonb -> 'days_until_expiry')
        WHEN jsonb_typeof(details::jsonb -> 'answers') = 'array' THEN json_build_object(
            'answers', (SELECT coalesce(json_agg(a ORDER BY a COLLATE "C"), '[]'::json)
                        FROM jsonb_array_elements_text(details::jsonb -> 'answers') AS a))
    END,
    now()
"""


class PostgresResultsStore:
    # Ingestion goes on beside the fold (it locks only rollup rows, which ingestion never writes).
    # A fold period's backlog in one transaction: 5,000 results a second over 500 monitors, folded
    # every 5 s, rewrite each of their 1,000 rollup rows once rather than a dozen times.
    fold_limit = 50_000

    async def existing_monitors(self, session: AsyncSession, monitor_ids: Sequence[str]) -> set[str]:
        """Read after taking the result writers' shared lock (in a statement of its own, so the
        read's snapshot is taken after any deletion it waited for)."""
        pg = await driver_connection(session)
        await pg.execute("SELECT pg_advisory_xact_lock_shared(%s)", (RESULT_WRITERS_LOCK,))
        cursor = await pg.execute("SELECT id FROM monitors WHERE id = ANY(%s)", (list(monitor_ids),))
        return {row[0] for row in await cursor.fetchall()}

    async def insert_new(self, session: AsyncSession, results: Sequence[ResultIn]) -> set[str]:
        pg = await driver_connection(session)
        async with pg.cursor() as cursor:
            # A group of agents' batches is up to 5,000 results: the COPY returns to the loop midway.
            await copy_rows(
                cursor,
                f"COPY traxo_in_results ({_RESULT_COLUMNS}) FROM STDIN",
                (
                    (
                        r.id, r.monitor_id, r.region, r.status, r.response_time, r.status_code,
                        r.error_kind, r.error_message, r.dns, r.tcp, r.tls, r.ttfb, r.download, r.total,
                        r.size, None if r.details is None else orjson.dumps(r.details).decode(),
                        r.checked_at, r.scheduled_at, r.agent_id,
                    )
                    for r in results
                ),
            )  # fmt: skip
            # One statement: insert what is new (not a replayed id) and queue it for its rollups. Not
            # ON CONFLICT: its speculative insertion cost more than this; a result stored meanwhile by
            # a concurrent batch (a replay racing its original) fails the batch, which is retried. In
            # id order, so two batches sharing ids wait for each other in one order, never in a cycle.
            await cursor.execute(
                f"""
                WITH inserted AS (
                    INSERT INTO check_results ({_RESULT_COLUMNS})
                    SELECT {_RESULT_COLUMNS} FROM traxo_in_results t
                    WHERE NOT EXISTS (SELECT 1 FROM check_results c WHERE c.id = t.id)
                    ORDER BY t.id
                    RETURNING {_RESULT_COLUMNS}
                ), queued AS (
                    INSERT INTO rollup_backlog ({_BACKLOG_COLUMNS})
                    SELECT monitor_id, checked_at, id, region, status = 'UP', response_time, dns_ms, tcp_ms,
                        tls_ms, ttfb_ms, download_ms, total_ms, size_bytes
                    FROM inserted
                ), judged AS (
                    INSERT INTO incident_backlog ({_INCIDENT_COLUMNS})
                    SELECT {_INCIDENT_ROW} FROM inserted
                )
                SELECT id FROM inserted
                """
            )
            # The temp table empties at commit (ON COMMIT DELETE ROWS); one batch per transaction.
            return {row[0] for row in await cursor.fetchall()}

    async def take_backlog(self, session: AsyncSession, limit: int) -> tuple[int, RollupDeltas]:
        return await postgres_rollups.take_backlog(session, limit)

    async def add_rollups(self, session: AsyncSession, deltas: RollupDeltas) -> None:
        await postgres_rollups.add_rollups(session, deltas)

    async def update_last_checks(self, session: AsyncSession, newest: dict[str, LastCheck]) -> None:
        """These updates run one at a time (an advisory lock held to the commit): two of them locking
        overlapping monitor rows, each following the other's fresh row versions, deadlock now and
        then, SKIP LOCKED or not. A monitor row someone is editing right now is skipped rather than
        waited for (the next result brings it up to date), "newest wins" keeps an older result from
        overwriting a newer one, and the commit does not wait for the disk: lastCheck is a copy, and
        the results it copies are committed already.
        """
        pg = await driver_connection(session)
        await pg.execute(
            f"SET LOCAL synchronous_commit = off; SELECT pg_advisory_xact_lock({LAST_CHECKS_LOCK})"
        )
        ids = sorted(newest)
        await pg.execute(
            """
            WITH n AS (
                SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::timestamptz[])
                    AS n(monitor_id, status, response_time, checked_at)
            ), locked AS (
                SELECT m.id FROM monitors m JOIN n ON n.monitor_id = m.id
                WHERE m.last_checked_at IS NULL OR m.last_checked_at <= n.checked_at
                ORDER BY m.id FOR NO KEY UPDATE OF m SKIP LOCKED
            )
            UPDATE monitors AS m SET
                last_check_status = n.status,
                last_check_response_time = n.response_time,
                last_checked_at = n.checked_at
            FROM n JOIN locked ON locked.id = n.monitor_id
            WHERE m.id = n.monitor_id
            """,
            (
                ids,
                [newest[i][0] for i in ids],
                [newest[i][1] for i in ids],
                [newest[i][2] for i in ids],
            ),
        )

    async def exclude_writers(self, session: AsyncSession) -> None:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RESULT_WRITERS_LOCK})

    def retries_insert(self, exc: Exception) -> bool:
        # A concurrent batch (a replay racing its original) may store some of these ids after this
        # one looked; again from the start, they are found and skipped.
        return isinstance(exc, psycopg.errors.UniqueViolation | psycopg.errors.DeadlockDetected)

    def retries_fold(self, exc: Exception) -> bool:
        # A monitor deleted after the fold found it fails the rollups' foreign key; again from the
        # start, its queued results are found orphaned and dropped.
        return isinstance(exc, psycopg.errors.ForeignKeyViolation)
