"""rollup backlog: results queued for the rollup fold; results without a monitor foreign key

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import control_plane.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollup_backlog",
        sa.Column("monitor_id", sa.String(length=40), nullable=False),
        sa.Column("checked_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("result_id", sa.String(length=40), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("up", sa.Boolean(), nullable=False),
        sa.Column("response_time", sa.Float(), nullable=True),
        sa.Column("dns_ms", sa.Float(), nullable=True),
        sa.Column("tcp_ms", sa.Float(), nullable=True),
        sa.Column("tls_ms", sa.Float(), nullable=True),
        sa.Column("ttfb_ms", sa.Float(), nullable=True),
        sa.Column("download_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("monitor_id", "checked_at", "result_id", name=op.f("pk_rollup_backlog")),
    )
    with op.batch_alter_table("check_results") as batch_op:
        batch_op.drop_constraint(op.f("fk_check_results_monitor_id_monitors"), type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("check_results") as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_check_results_monitor_id_monitors"),
            "monitors",
            ["monitor_id"],
            ["id"],
            ondelete="CASCADE",
        )
    op.drop_table("rollup_backlog")
