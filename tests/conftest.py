"""Shared fixtures: a real database (SQLite file or PostgreSQL), the API app, two organizations.

TRAXO_TEST_DATABASE_URL picks the database: unset = a SQLite file in a temp dir; a PostgreSQL URL
= a fresh database created on that server for this run and dropped afterwards, so runs never
share state.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

import control_plane.models  # noqa: F401  (all tables registered)
from control_plane import migrate
from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from control_plane.core.timefmt import utcnow
from control_plane.db import Base, Database
from control_plane.models import Membership, Role
from control_plane.services import accounts, organizations
from control_plane.settings import Plan, Settings
from tests.clock import MovableClock
from tests.databases import scratch_database


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under TRAXO_TEST_ONLY_DATABASE=1 (the PostgreSQL pass) run only tests that use a database;
    on SQLite, leave out tests marked `postgres_only` (they run in the PostgreSQL pass), and on
    PostgreSQL those marked `sqlite_only` or `one_pass` (they ran in the SQLite pass)."""
    on_postgres = bool(os.environ.get("TRAXO_TEST_DATABASE_URL", "").startswith("postgres"))
    only_database = os.environ.get("TRAXO_TEST_ONLY_DATABASE") == "1"
    selected = [
        item
        for item in items
        if (on_postgres or item.get_closest_marker("postgres_only") is None)
        and (not on_postgres or item.get_closest_marker("sqlite_only") is None)
        and (not on_postgres or item.get_closest_marker("one_pass") is None)
        and (not only_database or "database_url" in getattr(item, "fixturenames", ()))
    ]
    if len(selected) == len(items):
        return
    config.hook.pytest_deselected(items=[item for item in items if item not in selected])
    items[:] = selected


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scratch_database(
        os.environ.get("TRAXO_TEST_DATABASE_URL"), tmp_path_factory.mktemp("db"), "traxo_test"
    ) as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # The status pages' view cache off: tests read a page right after changing what it shows. A
    # registration's rebalance at once: tests wait for it (the join window has tests of its own).
    return Settings(
        database_url=database_url,
        redis_url=None,
        status_page_cache_seconds=0,
        agent_join_window_seconds=0,
    )


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> str:
    migrate.upgrade(settings.database_url)
    return settings.database_url


@pytest.fixture(scope="session")
async def database(migrated: str) -> AsyncIterator[Database]:
    db = Database(migrated)
    await db.start()
    await asyncio.wait_for(db.changes.wait_connected(), 10)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(scope="session")
def runtime(settings: Settings, database: Database, clock: MovableClock) -> Runtime:
    return Runtime.build(settings, database, clock=clock)


@pytest.fixture(autouse=True)
async def _clean_state(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every test that touches the database starts from empty tables, fresh rate limits and caches,
    and the wall clock's time."""
    yield
    if "database" not in request.fixturenames:
        return
    db: Database = request.getfixturevalue("database")
    async with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(delete(table))
    rt: Runtime | None = request.getfixturevalue("runtime") if "runtime" in request.fixturenames else None
    if rt is not None:
        await rt.rate_limiter.reset()
        rt.principals.clear()
        rt.uptime.clear()
    if "clock" in request.fixturenames:  # a test that moved time leaves it where it found it
        clock: MovableClock = request.getfixturevalue("clock")
        clock.reset()


@pytest.fixture
async def api(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as client:
        yield client


@dataclass
class Account:
    user_id: str
    email: str
    key: str
    org_id: str | None = None
    member_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class World:
    """Two organizations: A (owner, admin, viewer) and B (owner), plus a user with none."""

    alice: Account  # OWNER of org A
    adam: Account  # ADMIN of org A
    vera: Account  # VIEWER of org A
    bob: Account  # OWNER of org B
    nora: Account  # no organization

    @property
    def org_a(self) -> str:
        assert self.alice.org_id
        return self.alice.org_id

    @property
    def org_b(self) -> str:
        assert self.bob.org_id
        return self.bob.org_id


async def make_account(db: Database, email: str, name: str) -> Account:
    async with db.session() as session:
        user, key = await accounts.create_user(session, email=email, name=name, now=utcnow())
        return Account(user_id=user.id, email=user.email, key=key)


async def make_org(db: Database, owner: Account, slug: str, plan: Plan = Plan.FREE) -> None:
    async with db.session() as session:
        org = await organizations.create_organization(
            session, user_id=owner.user_id, name=slug.title(), slug=slug, plan=plan, now=utcnow()
        )
        owner.org_id = org.id
        owner.member_id = await session.scalar(
            Membership.__table__.select()
            .with_only_columns(Membership.id)
            .where(Membership.user_id == owner.user_id)
        )


async def add_member(db: Database, org_id: str, account: Account, role: Role) -> None:
    from control_plane.services import team

    async with db.session() as session:
        membership, _ = await team.invite_member(
            session, org_id, email=account.email, role=role, now=utcnow()
        )
        account.org_id = org_id
        account.member_id = membership.id


@pytest.fixture
async def world(database: Database) -> World:
    alice = await make_account(database, "alice@a.example", "Alice A")
    adam = await make_account(database, "adam@a.example", "Adam A")
    vera = await make_account(database, "vera@a.example", "Vera A")
    bob = await make_account(database, "bob@b.example", "Bob B")
    nora = await make_account(database, "nora@example.com", "Nora None")
    await make_org(database, alice, "org-a")
    await make_org(database, bob, "org-b")
    await add_member(database, alice.org_id or "", adam, Role.ADMIN)
    await add_member(database, alice.org_id or "", vera, Role.VIEWER)
    return World(alice, adam, vera, bob, nora)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind as the suite's."""
    with scratch_database(database_url, tmp_path, "traxo_fresh") as url:
        yield url
