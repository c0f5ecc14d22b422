"""PostgreSQL's rollup fold: the backlog added up in SQL (sums, bucket counts per rollup key) and
merged with the stored rollups, read back in one locked, ordered query."""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import ROWS_BETWEEN_YIELDS, copy_rows
from control_plane.domain.histogram import THRESHOLDS
from control_plane.results.domain import RollupDelta, RollupDeltas
from control_plane.results.postgres_connection import driver_connection

_ROLLUP_KEY = "monitor_id, region, granularity, bucket_start"
_ROLLUP_COLUMNS = f"{_ROLLUP_KEY}, count, up_count, sums, counts, histograms"
_COPY_IN_ROLLUPS = f"COPY traxo_in_rollups ({_ROLLUP_COLUMNS}) FROM STDIN"
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


async def take_backlog(session: AsyncSession, limit: int) -> tuple[int, RollupDeltas]:
    """Unqueue up to `limit` results (in the session's transaction) and add them up per rollup key,
    in SQL: only the sums and each histogram bucket's count come back, not the results."""
    pg = await driver_connection(session)
    cursor = await pg.execute(_TAKE_BACKLOG, {"limit": limit})
    taken = 0
    deltas: RollupDeltas = {}
    while rows := await cursor.fetchmany(ROWS_BETWEEN_YIELDS):
        for kind, monitor_id, region, granularity, start, n, up, sums, counts, measure, bucket in rows:
            if kind == 0:
                taken = n
                continue
            key = (monitor_id, region, granularity, start)
            delta = deltas.get(key)
            if delta is None:
                delta = deltas[key] = RollupDelta()
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
        await asyncio.sleep(0)
    return taken, deltas


async def add_rollups(session: AsyncSession, deltas: RollupDeltas) -> None:
    """New rollup rows go in as they are; existing ones are locked in key order, merged here and
    written back in one statement (merging JSON in SQL functions cost far more database time)."""
    pg = await driver_connection(session)
    keys = sorted(deltas)
    async with pg.cursor() as cursor:
        await copy_rows(
            cursor,
            _COPY_IN_ROLLUPS,
            (
                (*key, delta.count, delta.up_count, orjson.dumps(delta.sums).decode(),
                 orjson.dumps(delta.counts).decode(), orjson.dumps(delta.histograms).decode())
                for key in keys
                for delta in (deltas[key],)
            ),
        )  # fmt: skip
        await cursor.execute(
            f"INSERT INTO check_rollups ({_ROLLUP_COLUMNS}) SELECT {_ROLLUP_COLUMNS} FROM traxo_in_rollups"
            f" ORDER BY {_ROLLUP_KEY} ON CONFLICT ({_ROLLUP_KEY}) DO NOTHING RETURNING {_ROLLUP_KEY}"
        )
        created = {tuple(row) for row in await cursor.fetchall()}
        if len(created) == len(keys):
            return
        await cursor.execute(
            f"SELECT {_ROLLUP_COLUMNS} FROM check_rollups r"
            f" WHERE ({_ROLLUP_KEY}) IN (SELECT {_ROLLUP_KEY} FROM traxo_in_rollups)"
            f" ORDER BY {_ROLLUP_KEY} FOR UPDATE",
        )
        merged = []
        while rows := await cursor.fetchmany(ROWS_BETWEEN_YIELDS):
            for row in rows:
                key = tuple(row[:4])
                if key in created:
                    continue
                delta = deltas[key]  # type: ignore[index]
                sums, counts, histograms = row[6], row[7], row[8]
                delta.add_to(sums, counts, histograms)
                merged.append(
                    (*key, row[4] + delta.count, row[5] + delta.up_count, orjson.dumps(sums).decode(),
                     orjson.dumps(counts).decode(), orjson.dumps(histograms).decode())
                )  # fmt: skip
            await asyncio.sleep(0)
        await cursor.execute("TRUNCATE traxo_in_rollups")
        await copy_rows(cursor, _COPY_IN_ROLLUPS, merged)
        await cursor.execute(
            """
            UPDATE check_rollups r SET count = m.count, up_count = m.up_count, sums = m.sums,
                counts = m.counts, histograms = m.histograms
            FROM traxo_in_rollups m
            WHERE r.monitor_id = m.monitor_id AND r.region = m.region AND r.granularity = m.granularity
                AND r.bucket_start = m.bucket_start
            """
        )
