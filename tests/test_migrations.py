"""Alembic migrations: they produce exactly the models' schema, and concurrent runs are safe."""

from __future__ import annotations

import threading

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from control_plane import migrate
from control_plane.db import Base
from control_plane.settings import sync_database_url


def test_migrations_match_the_models(migrated: str) -> None:
    engine = create_engine(sync_database_url(migrated))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_concurrent_upgrades_are_safe(fresh_database_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate.upgrade(fresh_database_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = create_engine(sync_database_url(fresh_database_url))
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) <= tables


def test_downgrade_to_base_and_back(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url)
    config = migrate.alembic_config(fresh_database_url)
    command.downgrade(config, "base")
    engine = create_engine(sync_database_url(fresh_database_url))
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    migrate.upgrade(fresh_database_url)
