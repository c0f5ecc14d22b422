"""Readiness: the database answers and its schema has every migration this code was written for
(Alembic's head). A process behind on migrations takes no traffic: its queries would fail.

A schema newer than this code is ready: that is a rolling upgrade in progress (the chart's
pre-upgrade Job migrates before new pods start, and each migration keeps the previous release
working), and the old pods must keep serving until new ones are ready, not all leave the Service
at once. It is logged once, so a downgrade left running is seen."""

from __future__ import annotations

import asyncio
import logging
from functools import cache

from alembic.script import ScriptDirectory
from sqlalchemy import text

from control_plane.db import Database
from control_plane.migrate import alembic_config

TIMEOUT_SECONDS = 5.0

log = logging.getLogger(__name__)
_said_newer: set[frozenset[str]] = set()


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
        if unknown not in _said_newer:
            _said_newer.add(unknown)
            log.warning(
                "database schema is at revision %s, newer than this version of Traxo knows (its head is "
                "%s): serving on, as during a rolling upgrade",
                _names(unknown),
                _names(heads),
            )
        return None
    return f"database schema is at revision {_names(current)}, behind {_names(heads)}: run `traxo migrate`"


@cache
def _known_revisions() -> frozenset[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(revision.revision for revision in script.walk_revisions())


def _names(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions))
