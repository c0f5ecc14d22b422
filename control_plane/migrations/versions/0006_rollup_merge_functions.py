"""SQL functions that merge rollup JSON on PostgreSQL (results_pg.add_rollups)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 09:05:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Sum two JSON objects of numbers key by key (rollup sums and counts, one histogram's buckets).
JSON_ADD = """
CREATE OR REPLACE FUNCTION traxo_json_add(a json, b json) RETURNS json
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(json_object_agg(key, total), '{}'::json)
    FROM (
        SELECT key, sum(value::float8) AS total
        FROM (
            SELECT key, value FROM json_each_text(coalesce(a, '{}'::json))
            UNION ALL
            SELECT key, value FROM json_each_text(coalesce(b, '{}'::json))
        ) AS pairs
        GROUP BY key
    ) AS summed
$$
"""

# Merge {measure: {bucket: count}} histograms measure by measure.
HISTOGRAMS_ADD = """
CREATE OR REPLACE FUNCTION traxo_histograms_add(a json, b json) RETURNS json
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(json_object_agg(coalesce(x.key, y.key), traxo_json_add(x.value, y.value)), '{}'::json)
    FROM json_each(coalesce(a, '{}'::json)) AS x
    FULL JOIN json_each(coalesce(b, '{}'::json)) AS y ON x.key = y.key
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(JSON_ADD)
        op.execute(HISTOGRAMS_ADD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS traxo_histograms_add(json, json)")
        op.execute("DROP FUNCTION IF EXISTS traxo_json_add(json, json)")
