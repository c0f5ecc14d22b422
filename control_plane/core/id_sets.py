"""`column IN (ids)` for any number of ids, as statements each database accepts.

A statement may carry at most 65,535 parameters on PostgreSQL and 32,766 on SQLite (999 on builds
before 3.32); a region has as many monitors as its customers make. So a set of ids is sent in
chunks: on PostgreSQL as one array parameter each (`= ANY(:ids)`, the same statement text whatever
the count, so its plan is cached), on SQLite as IN lists short enough for any build.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

# Ids per statement. PostgreSQL: bounds one statement's array (10,000 ids ≈ 400 kB). SQLite: under
# the limit of the library Python is linked with, leaving room for the statement's other parameters.
# Few and large, since SQLite may plan each chunk as a scan of, say, an agent's grants.
POSTGRES_IDS_PER_STATEMENT = 10_000
SQLITE_IDS_PER_STATEMENT = 30_000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 900


def among(session: AsyncSession, column: Any, ids: Collection[str]) -> Iterator[ColumnElement[bool]]:
    """Conditions that together say `column IN ids`: run the statement once with each (none for no
    ids) and combine what they return. Ids are taken in sorted order, so chunks are index ranges."""
    ordered = sorted(ids)
    if session.get_bind().dialect.name == "postgresql":
        for start in range(0, len(ordered), POSTGRES_IDS_PER_STATEMENT):
            chunk = ordered[start : start + POSTGRES_IDS_PER_STATEMENT]
            yield column == any_(bindparam(None, chunk, type_=postgresql.ARRAY(String)))
    else:
        for start in range(0, len(ordered), SQLITE_IDS_PER_STATEMENT):
            yield column.in_(ordered[start : start + SQLITE_IDS_PER_STATEMENT])
