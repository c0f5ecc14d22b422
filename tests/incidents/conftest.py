"""A database of the suite's kind for tests that judge every monitor in it (the engine's sweep)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from control_plane import migrate
from control_plane.db import Database
from tests.conftest import make_account, make_org
from tests.databases import scratch_database


@pytest.fixture
async def own_database(database_url: str, tmp_path) -> AsyncIterator[Database]:
    with scratch_database(database_url, tmp_path, "traxo_sweep") as url:
        migrate.upgrade(url)
        db = Database(url)
        await db.start()
        try:
            yield db
        finally:
            await db.dispose()


@pytest.fixture
async def own_org(own_database: Database) -> str:
    owner = await make_account(own_database, "owner@sweep.example", "Sweep Owner")
    await make_org(own_database, owner, "sweep")
    assert owner.org_id is not None
    return owner.org_id
