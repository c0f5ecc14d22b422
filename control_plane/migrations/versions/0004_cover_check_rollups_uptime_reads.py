"""cover the dashboard's uptime read: rollups' (granularity, bucket_start) index includes monitor and counts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 08:35:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "ix_check_rollups_granularity_bucket_start"


def upgrade() -> None:
    # INCLUDE is PostgreSQL's; on SQLite the index is rebuilt as it was.
    op.drop_index(INDEX, table_name="check_rollups")
    op.create_index(
        INDEX,
        "check_rollups",
        ["granularity", "bucket_start"],
        unique=False,
        postgresql_include=["monitor_id", "count", "up_count"],
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="check_rollups")
    op.create_index(INDEX, "check_rollups", ["granularity", "bucket_start"], unique=False)
