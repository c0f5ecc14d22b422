"""PostgreSQL's fast path for results: COPY into temp tables, then set-based statements.

The generic path (results.py) sends multi-row INSERTs; at tens of thousands of results a second
their cost is what counts. Here a batch is COPY'd into a session temp table, then in one statement
inserted with ON CONFLICT DO NOTHING, queued for its rollups, and its monitors' lastCheck updated.
The fold adds the backlog up in SQL (sums, bucket counts per rollup key) and merges that with the
stored rollups, read back in one locked, ordered query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from psycopg.types.json import set_json_loads
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from control_plane.histogram import THRESHOLDS

if TYPE_CHECKING:
    from control_plane.services.last_checks import LastCheck
    from control_plane.services.results import ResultIn, RollupKey, _RollupDelta

_TEMP_TABLES = "traxo.results_temp_tables"  # in session.info: created in this session's transaction
_JSON_LOADS = "traxo.orjson_loads"  # in connection.info: set once per connection
_CREATE_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS traxo_in_results
    (LIKE check_results INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS traxo_in_rollups
    (LIKE check_rollups INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
"""
_ROLLUP_KEY = "monitor_id, region, granularity, bucket_start"
_ROLLUP_COLUMNS = f"{_ROLLUP_KEY}, count, up_count, sums, counts, histograms"
_RESULT_COLUMNS = (
    "id, monitor_id, region, status, response_time, status_code, error_kind, error_message, dns_ms, tcp_ms,"
    " tls_ms, ttfb_ms, download_ms, total_ms, size_bytes, details, checked_at, scheduled_at, agent_id"
)


# Advisory lock keys. Result writers hold RESULT_WRITERS_LOCK shared; a monitor's deletion holds it
# exclusively (results.exclude_result_writers).
RESULT_WRITERS_LOCK = 0x7472_786F_7277  # "trxorw"
_LAST_CHECKS_LOCK = 0x7472_786F_6C63  # pg_advisory_xact_lock key of update_last_checks ("trxolc")
_BACKLOG_COLUMNS = (
    "monitor_id, checked_at, result_id, region, up, response_time, dns_ms, tcp_ms, tls_ms, ttfb_ms,"
    " download_ms, total_ms, size_bytes"
)
# The measures a rollup sums, in rollup names; `total` falls back to the response time, as in
# ResultIn.measures. Histogram buckets come from control_plane/histogram.py's threshold table
# (width_bucket there, bisect in Python), so they agree exactly.
_MEASURE_SQL = (
    ("dns", "dns_ms"),
    ("tcp", "tcp_ms"),
    ("tls", "tls_ms"),
    ("ttfb", "ttfb_ms"),
    ("download", "download_ms"),
    ("total", "coalesce(total_ms, response_time)"),
)
_FOLDED = (*(name for name, _ in _MEASURE_SQL), "size")
_BUCKET_SQL = f"width_bucket(v.value, ARRAY[{', '.join(repr(t) for t in THRESHOLDS)}]::float8[])"
_TAKE_BACKLOG = f"""
WITH taken AS (
    DELETE FROM rollup_backlog
    WHERE ctid = ANY(ARRAY(SELECT ctid FROM rollup_backlog LIMIT %(limit)s))
    RETURNING *
), keyed AS (
    SELECT t.*, g.granularity, g.bucket_start
    FROM taken t
    CROSS JOIN LATERAL (VALUES
        ('hour', date_trunc('hour', t.checked_at, 'UTC')),
        ('day', date_trunc('day', t.checked_at, 'UTC'))
    ) AS g (granularity, bucket_start)
    WHERE EXISTS (SELECT 1 FROM monitors m WHERE m.id = t.monitor_id)
)
SELECT 0, NULL, NULL, NULL, NULL, count(*), NULL::bigint, NULL::float8[], NULL::bigint[], NULL, NULL::int
FROM taken
UNION ALL
SELECT 1, monitor_id, region, granularity, bucket_start, count(*), count(*) FILTER (WHERE up),
    ARRAY[{", ".join(f"sum({sql})" for _, sql in _MEASURE_SQL)}, sum(size_bytes)::float8],
    ARRAY[{", ".join(f"count({sql})" for _, sql in _MEASURE_SQL)}, count(size_bytes)],
    NULL, NULL
FROM keyed
GROUP BY monitor_id, region, granularity, bucket_start
UNION ALL
SELECT 2, monitor_id, region, granularity, bucket_start, count(*), NULL, NULL, NULL, v.measure, {_BUCKET_SQL}
FROM keyed
CROSS JOIN LATERAL (VALUES {", ".join(f"('{name}', {sql})" for name, sql in _MEASURE_SQL)})
    AS v (measure, value)
WHERE v.value IS NOT NULL
GROUP BY monitor_id, region, granularity, bucket_start, v.measure, {_BUCKET_SQL}
"""


@event.listens_for(Session, "after_rollback")
def _forget_temp_tables(session: Session, *_: Any) -> None:
    # A rollback may have taken the tables with it (if its transaction created them): whatever
    # rolls a session back, its next use creates them again.
    session.info.pop(_TEMP_TABLES, None)


async def _driver_connection(session: AsyncSession) -> Any:
    """The session's psycopg connection (in the session's transaction), with our temp tables.

    The tables are created (IF NOT EXISTS) once per session, i.e. in every batch's transaction:
    creating them once per connection would not survive that first transaction rolling back.
    """
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if not connection.info.get(_JSON_LOADS):
        set_json_loads(orjson.loads, driver)  # rollups come back as JSON; orjson reads them fastest
        connection.info[_JSON_LOADS] = True
    if not session.info.get(_TEMP_TABLES):
        await driver.execute(_CREATE_TEMP_TABLES)
        session.info[_TEMP_TABLES] = True
    return driver


async def existing_monitors(session: AsyncSession, monitor_ids: Sequence[str]) -> set[str]:
    """The existing monitors among these, read after taking the result writers' shared lock (in a
    statement of its own, so the read's snapshot is taken after any deletion it waited for)."""
    pg = await _driver_connection(session)
    await pg.execute("SELECT pg_advisory_xact_lock_shared(%s)", (RESULT_WRITERS_LOCK,))
    cursor = await pg.execute("SELECT id FROM monitors WHERE id = ANY(%s)", (list(monitor_ids),))
    return {row[0] for row in await cursor.fetchall()}


async def insert_new(session: AsyncSession, results: Sequence[ResultIn]) -> set[str]:
    pg = await _driver_connection(session)
    async with pg.cursor() as cursor:
        async with cursor.copy(f"COPY traxo_in_results ({_RESULT_COLUMNS}) FROM STDIN") as copy:
            for r in results:
                await copy.write_row(
                    (
                        r.id, r.monitor_id, r.region, r.status, r.response_time, r.status_code, r.error_kind,
                        r.error_message, r.dns, r.tcp, r.tls, r.ttfb, r.download, r.total, r.size,
                        None if r.details is None else orjson.dumps(r.details).decode(),
                        r.checked_at, r.scheduled_at, r.agent_id,
                    )
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
            )
            SELECT id FROM inserted
            """
        )
        # The temp table empties at commit (ON COMMIT DELETE ROWS); one batch per transaction.
        return {row[0] for row in await cursor.fetchall()}


async def take_backlog(session: AsyncSession, limit: int) -> tuple[int, dict[RollupKey, _RollupDelta]]:
    """Unqueue up to `limit` results (in the session's transaction) and add them up per rollup key,
    in SQL: only the sums and each histogram bucket's count come back, not the results."""
    from control_plane.services.results import _RollupDelta

    pg = await _driver_connection(session)
    cursor = await pg.execute(_TAKE_BACKLOG, {"limit": limit})
    taken = 0
    deltas: dict[RollupKey, _RollupDelta] = {}
    rows = await cursor.fetchall()
    for kind, monitor_id, region, granularity, start, n, up, sums, counts, measure, bucket in rows:
        if kind == 0:
            taken = n
            continue
        key = (monitor_id, region, granularity, start)
        delta = deltas.get(key)
        if delta is None:
            delta = deltas[key] = _RollupDelta()
        if kind == 1:
            delta.count, delta.up_count = n, up
            for name, total, count in zip(_FOLDED, sums, counts, strict=True):
                if count:
                    delta.sums[name] = total
                    delta.counts[name] = count
        else:
            histogram = delta.histograms.get(measure)
            if histogram is None:
                histogram = delta.histograms[measure] = {}
            histogram[str(bucket)] = n
    return taken, deltas


async def add_rollups(session: AsyncSession, deltas: dict[RollupKey, _RollupDelta]) -> None:
    """New rollup rows go in as they are; existing ones are locked in key order, merged here and
    written back in one statement (merging JSON in SQL functions cost far more database time)."""
    from control_plane import histogram

    pg = await _driver_connection(session)
    keys = sorted(deltas)
    async with pg.cursor() as cursor:
        async with cursor.copy(f"COPY traxo_in_rollups ({_ROLLUP_COLUMNS}) FROM STDIN") as copy:
            for key in keys:
                delta = deltas[key]
                await copy.write_row(
                    (*key, delta.count, delta.up_count, orjson.dumps(delta.sums).decode(),
                     orjson.dumps(delta.counts).decode(), orjson.dumps(delta.histograms).decode())
                )  # fmt: skip
        await cursor.execute(
            f"INSERT INTO check_rollups ({_ROLLUP_COLUMNS}) SELECT {_ROLLUP_COLUMNS} FROM traxo_in_rollups"
            f" ORDER BY {_ROLLUP_KEY} ON CONFLICT ({_ROLLUP_KEY}) DO NOTHING RETURNING {_ROLLUP_KEY}"
        )
        created = {tuple(row) for row in await cursor.fetchall()}
        existing = [key for key in keys if key not in created]
        if not existing:
            return
        await cursor.execute(
            f"SELECT {_ROLLUP_COLUMNS} FROM check_rollups r"
            f" WHERE ({_ROLLUP_KEY}) IN (SELECT {_ROLLUP_KEY} FROM traxo_in_rollups)"
            f" ORDER BY {_ROLLUP_KEY} FOR UPDATE",
        )
        merged = []
        for row in await cursor.fetchall():
            key = tuple(row[:4])
            if key in created:
                continue
            delta = deltas[key]  # type: ignore[index]
            sums, counts, histograms = row[6], row[7], row[8]
            for name, value in delta.sums.items():
                sums[name] = sums.get(name, 0.0) + value
            for name, value in delta.counts.items():
                counts[name] = counts.get(name, 0) + value
            for name, buckets in delta.histograms.items():
                histogram.merge_into(histograms.setdefault(name, {}), buckets)
            merged.append(
                (*key, row[4] + delta.count, row[5] + delta.up_count, orjson.dumps(sums).decode(),
                 orjson.dumps(counts).decode(), orjson.dumps(histograms).decode())
            )  # fmt: skip
        await cursor.execute("TRUNCATE traxo_in_rollups")
        async with cursor.copy(f"COPY traxo_in_rollups ({_ROLLUP_COLUMNS}) FROM STDIN") as copy:
            for values in merged:
                await copy.write_row(values)
        await cursor.execute(
            """
            UPDATE check_rollups r SET count = m.count, up_count = m.up_count, sums = m.sums,
                counts = m.counts, histograms = m.histograms
            FROM traxo_in_rollups m
            WHERE r.monitor_id = m.monitor_id AND r.region = m.region AND r.granularity = m.granularity
                AND r.bucket_start = m.bucket_start
            """
        )


async def update_last_checks(session: AsyncSession, newest: dict[str, LastCheck]) -> None:
    """Monitors' newest results into their lastCheck, in the session's transaction.

    These updates run one at a time (an advisory lock held to the commit): two of them locking
    overlapping monitor rows, each following the other's fresh row versions, deadlock now and
    then, SKIP LOCKED or not. A monitor row someone is editing right now is skipped rather than
    waited for (the next result brings it up to date), "newest wins" keeps an older result from
    overwriting a newer one, and the commit does not wait for the disk: lastCheck is a copy, and
    the results it copies are committed already.
    """
    pg = await _driver_connection(session)
    await pg.execute(f"SET LOCAL synchronous_commit = off; SELECT pg_advisory_xact_lock({_LAST_CHECKS_LOCK})")
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
