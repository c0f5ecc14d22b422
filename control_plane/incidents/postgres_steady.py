"""PostgreSQL's fast path for what most results are: a success from a region that is not failing.

Such a run changes nothing but its region's counters, so it is applied in SQL where it is taken
from the queue: one statement unqueues a chunk, folds every (monitor, region) whose new results are
all plain successes (no certificate or DNS signal) newer than its newest into its state row, and
returns the rest for the engine's full evaluation in Python. Which runs qualify is exactly where
the full evaluation could change no incident: the region is not failing nor silent, the monitor is
active and has no failure-rate rule (a rate counts successes too), and its state row exists.
Successes older than the region's newest are skipped there as in Python: they count for nothing.

Lock order: whatever judges a monitor locks its monitor_states row before it writes the monitor's
region rows (each set in id order): the engine's Python path, the NO_DATA sweep, heartbeats. So the
chunk's rows are picked first, then every monitor in it is locked, and only then folded: folding
region rows before holding their monitors deadlocked with a sweep holding those monitors and waiting
for the same region rows (tests/incidents/test_lock_order.py). The chunk's monitors without a state
row get one before any is locked (an insert holds its row: inserting later, while holding the others,
would take locks out of order).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.incidents.fold import Observation
from control_plane.incidents.state_rows import create_missing_states

_PICK = """
SELECT result_id, monitor_id FROM incident_backlog {where}
ORDER BY queued_at LIMIT :limit FOR UPDATE SKIP LOCKED
"""
_PICK_ALL = text(_PICK.format(where=""))
_PICK_BEFORE = text(_PICK.format(where="WHERE queued_at < :before"))
_LOCK_MONITORS = text(
    "SELECT monitor_id FROM monitor_states WHERE monitor_id = ANY(CAST(:monitors AS text[])) "
    "ORDER BY monitor_id FOR UPDATE"
)

_STEADY = text("""
WITH taken AS (
    DELETE FROM incident_backlog b WHERE b.result_id = ANY(CAST(:picked AS text[]))
    RETURNING b.result_id, b.monitor_id, b.region, b.checked_at, b.up, b.error, b.signal
), runs AS (
    SELECT t.monitor_id, t.region, count(*) AS n,
        count(*) FILTER (WHERE t.checked_at > s.newest_at) AS newer,
        bool_and(t.up AND t.signal IS NULL) AS plain_up, max(t.checked_at) AS newest
    FROM taken t JOIN monitor_region_states s ON s.monitor_id = t.monitor_id AND s.region = t.region
    GROUP BY t.monitor_id, t.region
), steady AS (
    UPDATE monitor_region_states s
    SET consecutive_successes = LEAST(s.consecutive_successes + r.newer, 1000000),
        consecutive_failures = CASE WHEN r.newer > 0 THEN 0 ELSE s.consecutive_failures END,
        newest_at = GREATEST(s.newest_at, r.newest)
    FROM runs r, monitors m
    WHERE s.monitor_id = r.monitor_id AND s.region = r.region AND m.id = r.monitor_id
        AND r.plain_up AND NOT s.failing AND NOT s.no_data AND s.newest_at IS NOT NULL
        AND m.is_active AND NOT (m.config::jsonb ? 'failureRate')
    RETURNING s.monitor_id, s.region, r.n
)
SELECT t.result_id, t.monitor_id, t.region, t.checked_at, t.up, t.error, t.signal, NULL::bigint AS folded
FROM taken t
WHERE NOT EXISTS (SELECT 1 FROM steady s WHERE s.monitor_id = t.monitor_id AND s.region = t.region)
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, coalesce((SELECT sum(n) FROM steady), 0)
""")


async def take_folding_steady(
    session: AsyncSession, *, limit: int, queued_before: datetime | None
) -> tuple[list[Observation], int]:
    """Unqueue up to `limit` results (oldest first, skipping rows others hold), their monitors
    locked for this transaction; returns those left to evaluate, and how many were folded here."""
    if queued_before is None:
        picked = (await session.execute(_PICK_ALL, {"limit": limit})).all()
    else:
        picked = (await session.execute(_PICK_BEFORE, {"limit": limit, "before": queued_before})).all()
    if not picked:
        return [], 0
    monitors = sorted({row.monitor_id for row in picked})
    await create_missing_states(session, monitors)
    await session.execute(_LOCK_MONITORS, {"monitors": monitors})
    rows = await session.execute(_STEADY, {"picked": [row.result_id for row in picked]})
    left: list[Observation] = []
    folded = 0
    for row in rows:
        if row.result_id is None:
            folded = int(row.folded)
        else:
            left.append(
                Observation(
                    row.result_id, row.monitor_id, row.region, row.checked_at, row.up, row.error, row.signal
                )
            )
    return left, folded
