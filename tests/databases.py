"""Scratch databases for tests: a SQLite file, or a new database on the PostgreSQL server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from control_plane.settings import sync_database_url


@contextmanager
def scratch_database(like_url: str | None, directory: Path, prefix: str) -> Iterator[str]:
    """A new, empty database of the kind `like_url` names (SQLite when None), dropped afterwards."""
    if not like_url or like_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{directory / f'{prefix}.db'}"
        return
    url = make_url(sync_database_url(like_url))
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
