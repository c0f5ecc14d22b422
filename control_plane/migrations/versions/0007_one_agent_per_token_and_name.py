"""one agent per token and name: a restarted agent keeps its id; incarnations fence older streams

Until now every registration was a row of its own (and a new agent id), the older ones of the same
token and name marked superseded. Those older rows go (results keep the ids they were stored with);
the newest of each (token, name) stays as that agent, `superseded_at` becomes `lapsed_at` (all that
still sets it is a lapsed lease), and `incarnation` counts its registrations from here on.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DELETE FROM agents
        WHERE EXISTS (
            SELECT 1 FROM agents AS newer
            WHERE newer.token_id = agents.token_id
                AND newer.name = agents.name
                AND (
                    newer.registered_at > agents.registered_at
                    OR (newer.registered_at = agents.registered_at AND newer.id > agents.id)
                )
        )
        """
    )
    # Two batches: SQLite's copy of the table cannot rename a column and index it by its new name at once.
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_index("ix_agents_region_superseded_at")
        batch_op.alter_column("superseded_at", new_column_name="lapsed_at")
        batch_op.add_column(sa.Column("incarnation", sa.BigInteger(), server_default="1", nullable=False))
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_agents_token_id_name", ["token_id", "name"])
        batch_op.create_index("ix_agents_region_lapsed_at", ["region", "lapsed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_index("ix_agents_region_lapsed_at")
        batch_op.drop_constraint("uq_agents_token_id_name", type_="unique")
        batch_op.drop_column("incarnation")
        batch_op.alter_column("lapsed_at", new_column_name="superseded_at")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.create_index("ix_agents_region_superseded_at", ["region", "superseded_at"], unique=False)
