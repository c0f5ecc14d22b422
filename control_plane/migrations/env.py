"""Alembic environment: runs migrations on a synchronous connection handed in by control_plane.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from control_plane import models  # noqa: F401  (registers every table on Base.metadata)
from control_plane.db import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run_on(conn)
        conn.commit()
    engine.dispose()


def _run_on(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
