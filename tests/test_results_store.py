"""The results package's seams: one store per database, the after-commit listeners, retries the
store asks for, and the layering (no dialect above the stores, no import cycles)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from control_plane.models import CheckResult, RollupBacklog
from control_plane.results import ResultsIngest, record_results, results_store
from control_plane.results.postgres_store import PostgresResultsStore
from control_plane.results.sqlite_store import SqliteResultsStore
from tests.factories import insert_monitor, result

T0 = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
PACKAGE = Path(__file__).resolve().parent.parent / "control_plane" / "results"
STORE_MODULES = {"store", "sqlite_store", "postgres_store", "postgres_rollups", "postgres_connection"}


async def test_each_database_gets_its_own_store():
    sqlite = create_async_engine("sqlite+aiosqlite://")
    postgres = create_async_engine("postgresql+psycopg://traxo@127.0.0.1:1/none")  # never connected
    try:
        assert isinstance(results_store(sqlite), SqliteResultsStore)
        assert isinstance(results_store(postgres), PostgresResultsStore)
    finally:
        await sqlite.dispose()
        await postgres.dispose()
    with pytest.raises(ValueError, match="'mysql'"):
        results_store(SimpleNamespace(dialect=SimpleNamespace(name="mysql")))  # type: ignore[arg-type]


async def count(database, model) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_after_commit_listeners_get_what_a_batch_stored_once_it_is_committed(database, world):
    monitor = await insert_monitor(database, world.org_a)
    heard: list[tuple[list[str], int]] = []

    async def listener(session, stored) -> None:
        ids = [r.id for r in stored]
        async with database.session() as other:  # committed: another session sees them
            visible = await other.scalar(select(func.count()).where(CheckResult.id.in_(ids)))
        heard.append((ids, int(visible or 0)))

    ingest = ResultsIngest(results_store(database.engine), [listener])
    old, new, orphan = (
        result(monitor.id, T0),
        result(monitor.id, T0 + timedelta(minutes=1)),
        result("mon_gone", T0),
    )
    for batch in ([old], [old, new, orphan], [old]):  # the last stores nothing: no call
        async with database.session() as session:
            await ingest.record(session, batch)
    assert heard == [([old.id], 1), ([new.id], 1)]


class Race(Exception):
    pass


class FirstInsertRaces:
    """The database's store, but its first insert fails after writing, with an error it says a
    fresh start resolves (as PostgreSQL's does for a replay racing its original)."""

    def __init__(self, store) -> None:
        self._store = store
        self.attempts = 0

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def insert_new(self, session, results):
        self.attempts += 1
        inserted = await self._store.insert_new(session, results)
        if self.attempts == 1:
            raise Race("a concurrent batch stored some of these")
        return inserted

    def retries_insert(self, exc: Exception) -> bool:
        return isinstance(exc, Race) or self._store.retries_insert(exc)


async def test_a_batch_the_store_says_to_retry_is_rolled_back_and_stored_once(database, world):
    monitor = await insert_monitor(database, world.org_a)
    batch = [result(monitor.id, T0 + timedelta(seconds=i)) for i in range(5)]
    store = FirstInsertRaces(results_store(database.engine))
    async with database.session() as session:
        outcome = await record_results(session, batch, store=store)
    assert store.attempts == 2
    assert sorted(outcome.inserted) == sorted(r.id for r in batch) and outcome.duplicates == []
    assert await count(database, CheckResult) == 5 and await count(database, RollupBacklog) == 5


def _module_imports(path: Path) -> tuple[set[str], set[str]]:
    """The modules `path` imports, and the attribute names it reads."""
    tree = ast.parse(path.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    return imported, attributes


def test_nothing_above_the_stores_knows_which_database_it_is_on():
    for path in PACKAGE.glob("*.py"):
        if path.stem in STORE_MODULES or path.stem == "__init__":
            continue
        imported, attributes = _module_imports(path)
        assert not {"dialect", "is_sqlite"} & attributes, path.name
        for module in imported:
            assert not module.startswith(("psycopg", "sqlalchemy.dialects")), (path.name, module)
            assert module.rsplit(".", 1)[-1] not in STORE_MODULES - {"store"}, (path.name, module)


def test_the_results_modules_import_each_other_without_cycles():
    prefix = "control_plane.results."
    graph = {
        path.stem: {
            name[len(prefix) :].split(".")[0]
            for name in _module_imports(path)[0]
            if name.startswith(prefix) and name[len(prefix) :].split(".")[0] != path.stem
        }
        for path in PACKAGE.glob("*.py")
        if path.stem != "__init__"
    }
    graph = {module: {d for d in deps if d in graph} for module, deps in graph.items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module not in done:
            for dependency in graph[module]:
                visit(dependency, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())
    assert "domain" in graph and graph["domain"] == set()  # the bottom
