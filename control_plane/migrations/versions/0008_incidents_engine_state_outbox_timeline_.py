"""incidents engine state, outbox, timeline, maintenance windows, heartbeat states

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:52:44.497921

Existing incidents (none were ever opened before the engine) get DOWN, no regions, not flapping.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import control_plane.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incident_backlog",
        sa.Column("result_id", sa.String(length=40), nullable=False),
        sa.Column("monitor_id", sa.String(length=40), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("checked_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("up", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("signal", sa.JSON(), nullable=True),
        sa.Column("queued_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("result_id", name=op.f("pk_incident_backlog")),
    )
    with op.batch_alter_table("incident_backlog", schema=None) as batch_op:
        batch_op.create_index("ix_incident_backlog_queued_at", ["queued_at"], unique=False)

    op.create_table(
        "heartbeat_states",
        sa.Column("monitor_id", sa.String(length=40), nullable=False),
        sa.Column("last_ping_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_start_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("open_runs", sa.JSON(), nullable=False),
        sa.Column("due_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("missed_due_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["monitor_id"],
            ["monitors.id"],
            name=op.f("fk_heartbeat_states_monitor_id_monitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("monitor_id", name=op.f("pk_heartbeat_states")),
    )
    with op.batch_alter_table("heartbeat_states", schema=None) as batch_op:
        batch_op.create_index("ix_heartbeat_states_due_at", ["due_at"], unique=False)

    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("monitor_id", sa.String(length=40), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("starts_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("recurrence", sa.String(length=200), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("created_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["monitor_id"],
            ["monitors.id"],
            name=op.f("fk_maintenance_windows_monitor_id_monitors"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_maintenance_windows_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_maintenance_windows_org_id_starts_at", ["org_id", "starts_at"], unique=False
        )

    op.create_table(
        "monitor_region_states",
        sa.Column("monitor_id", sa.String(length=40), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("failing", sa.Boolean(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("consecutive_successes", sa.Integer(), nullable=False),
        sa.Column("newest_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failing_since", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("no_data", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["monitor_id"],
            ["monitors.id"],
            name=op.f("fk_monitor_region_states_monitor_id_monitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("monitor_id", "region", name=op.f("pk_monitor_region_states")),
    )
    op.create_table(
        "monitor_states",
        sa.Column("monitor_id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("down", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", control_plane.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("transitions", sa.JSON(), nullable=False),
        sa.Column("dns_answers", sa.JSON(), nullable=True),
        sa.Column("ssl_expiry_noted", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["monitor_id"],
            ["monitors.id"],
            name=op.f("fk_monitor_states_monitor_id_monitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("monitor_id", name=op.f("pk_monitor_states")),
    )
    op.create_table(
        "incident_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("monitor_id", sa.String(length=40), nullable=False),
        sa.Column("incident_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("in_maintenance", sa.Boolean(), nullable=False),
        sa.Column("suppressed_by", sa.String(length=40), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_events_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_events")),
    )
    with op.batch_alter_table("incident_events", schema=None) as batch_op:
        batch_op.create_index("ix_incident_events_incident_id", ["incident_id"], unique=False)
        batch_op.create_index("ix_incident_events_occurred_at", ["occurred_at"], unique=False)

    op.create_table(
        "incident_updates",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("incident_id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("author_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", control_plane.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_updates_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_updates")),
    )
    with op.batch_alter_table("incident_updates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incident_updates_incident_id_created_at", ["incident_id", "created_at"], unique=False
        )

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="DOWN"))
        batch_op.add_column(sa.Column("regions", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="investigating")
        )
        batch_op.add_column(sa.Column("flapping", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("suppressed_by", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("in_maintenance", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("acknowledged_at", control_plane.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column(
                "updated_at",
                control_plane.db.UTCDateTime(timezone=True),
                nullable=False,
                server_default=sa.func.current_timestamp(),
            )
        )
        batch_op.create_index(
            "uq_incidents_one_open_per_kind",
            ["monitor_id", "kind"],
            unique=True,
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_incidents_one_open_per_kind",
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )
        batch_op.drop_column("updated_at")
        batch_op.drop_column("acknowledged_by")
        batch_op.drop_column("acknowledged_at")
        batch_op.drop_column("in_maintenance")
        batch_op.drop_column("suppressed_by")
        batch_op.drop_column("flapping")
        batch_op.drop_column("status")
        batch_op.drop_column("regions")
        batch_op.drop_column("kind")

    with op.batch_alter_table("incident_updates", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_updates_incident_id_created_at")

    op.drop_table("incident_updates")
    with op.batch_alter_table("incident_events", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_events_occurred_at")
        batch_op.drop_index("ix_incident_events_incident_id")

    op.drop_table("incident_events")
    op.drop_table("monitor_states")
    op.drop_table("monitor_region_states")
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.drop_index("ix_maintenance_windows_org_id_starts_at")

    op.drop_table("maintenance_windows")
    with op.batch_alter_table("heartbeat_states", schema=None) as batch_op:
        batch_op.drop_index("ix_heartbeat_states_due_at")

    op.drop_table("heartbeat_states")
    with op.batch_alter_table("incident_backlog", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_backlog_queued_at")

    op.drop_table("incident_backlog")
