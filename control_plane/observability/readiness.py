"""Readiness: the database answers and its schema is the one this code was written for (Alembic's
head). A process behind on migrations, or one that finds a newer schema than it knows, takes no
traffic: its queries would fail, or write what the schema no longer means."""

from __future__ import annotations

import asyncio
from functools import cache

from alembic.script import ScriptDirectory
from sqlalchemy import text

from control_plane.db import Database
from control_plane.migrate import alembic_config

TIMEOUT_SECONDS = 5.0


@cache
def schema_heads() -> frozenset[str]:
    """The revisions this code's migrations end at (read once: the scripts do not change)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


async def unready_reason(db: Database) -> str | None:
    """None when ready, else why not, in words for the operator."""
    heads = schema_heads()
    current: frozenset[str]
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS), db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            try:
                rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            except Exception:  # no alembic_version table: nothing was ever migrated
                current = frozenset()
            else:
                current = frozenset(str(row[0]) for row in rows)
    except TimeoutError:
        return f"database did not answer within {TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}: {str(exc)[:200]}"
    if current == heads:
        return None
    if not current:
        return f"database schema not migrated: run `traxo migrate` (head {_names(heads)})"
    known = _known_revisions()
    unknown = current - known
    if unknown:
        return (
            f"database schema is at revision {_names(unknown)}, which this version of Traxo does not know "
            f"(its head is {_names(heads)}): a newer version migrated it"
        )
    return f"database schema is at revision {_names(current)}, behind {_names(heads)}: run `traxo migrate`"


@cache
def _known_revisions() -> frozenset[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(revision.revision for revision in script.walk_revisions())


def _names(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions))
