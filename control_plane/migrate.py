"""Schema migrations (Alembic), run under a lock so replicas starting together take turns."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from control_plane.settings import sync_database_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary constant naming Traxo's migration lock among PostgreSQL advisory locks.
_ADVISORY_LOCK_KEY = 0x7472_6178_6F01


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_database_url(database_url).replace("%", "%%"))
    return config


@contextmanager
def _sqlite_file_lock(database_url: str) -> Iterator[None]:
    database = make_url(sync_database_url(database_url)).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to call from several processes at once."""
    config = alembic_config(database_url)
    url = sync_database_url(database_url)
    if url.startswith("sqlite"):
        with _sqlite_file_lock(database_url):
            command.upgrade(config, revision)
        return
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            _with_advisory_lock(connection, config, revision)
    finally:
        engine.dispose()


def _with_advisory_lock(connection: Connection, config: Config, revision: str) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    connection.commit()
    try:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        connection.commit()
