"""/readyz: 200 only while the database answers and its schema is at Alembic's head; otherwise a
503 saying why (not migrated, behind, ahead of this code, unreachable). /healthz stays trivial."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from control_plane import migrate
from control_plane.db import Database
from control_plane.observability.readiness import schema_heads, unready_reason
from tests.observability.support import app_with, client_of


async def readyz(runtime, database_url: str) -> tuple[int, dict]:
    """/readyz of an app on `database_url` (not the suite's database)."""
    db = Database(database_url)
    try:
        async with client_of(app_with(runtime, db=db)) as http:
            response = await http.get("/readyz")
        return response.status_code, response.json()
    finally:
        await db.dispose()


async def test_it_is_ready_on_a_migrated_database(api):
    response = await api.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready"}
    assert (await api.get("/healthz")).json() == {"status": "ok"}


async def test_a_database_behind_on_migrations_is_a_503_naming_both_revisions(runtime, fresh_database_url):
    heads = schema_heads()
    assert heads == {"0012"}, "a new migration: point this test's older revision below it"
    await asyncio.to_thread(migrate.upgrade, fresh_database_url, "0011")
    status, body = await readyz(runtime, fresh_database_url)
    assert status == 503
    assert body == {
        "status": "unready",
        "error": "database schema is at revision 0011, behind 0012: run `traxo migrate`",
    }
    await asyncio.to_thread(migrate.upgrade, fresh_database_url)
    assert await readyz(runtime, fresh_database_url) == (200, {"status": "ready"})


async def test_a_database_never_migrated_is_a_503(runtime, fresh_database_url):
    status, body = await readyz(runtime, fresh_database_url)
    assert status == 503 and body["status"] == "unready"
    assert body["error"].startswith("database schema not migrated") and "traxo migrate" in body["error"]


async def test_a_schema_newer_than_this_code_is_ready_and_logged(fresh_database_url, caplog):
    # A rolling upgrade: the pre-upgrade Job migrated, and the old pods keep serving meanwhile.
    db = Database(fresh_database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            await conn.execute(text("INSERT INTO alembic_version VALUES ('0099')"))
        reason = await unready_reason(db)
    finally:
        await db.dispose()
    assert reason is None
    assert "revision 0099, newer than this version of Traxo knows" in caplog.text and "0012" in caplog.text


async def test_an_unreachable_database_is_a_503_that_says_so(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing-directory' / 'traxo.db'}")
    try:
        reason = await unready_reason(db)
    finally:
        await db.dispose()
    assert reason is not None and reason.startswith("database unreachable: OperationalError")
