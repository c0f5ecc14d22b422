"""Regions with more monitors than one SQL statement may carry parameters (PostgreSQL: 65,535; SQLite:
32,766), and what a failing statement leaves in the log."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from control_plane.agents import registry
from control_plane.agents.assignment_reads import load_assignments
from control_plane.agents.convert import results_from_proto
from control_plane.agents.coordinator import AgentCoordinator
from control_plane.agents.ingest import ingest_batch
from control_plane.db import Database
from control_plane.models import AgentToken, AssignmentGrant, CheckResult
from control_plane.settings import Settings
from tests.agents_server.server_tools import (
    REGION,
    active_grants,
    check_result,
    create_token,
    insert_monitors,
)
from tests.conftest import World
from tests.monitor_tools import set_plan
from tests.waiting import eventually

# Past PostgreSQL's limit of 65,535 bind parameters in a statement, and over twice SQLite's 32,766.
MANY = 70_000
# Upstream SQLite's limit since 3.32 (older builds: 999). Debian's SQLite is built with 250,000, so
# the tests hold every statement to it rather than let this machine's SQLite be lenient.
SQLITE_MAX_VARIABLES = 32_766


@pytest.fixture(autouse=True)
def _statements_within_sqlites_parameter_limit(database: Database) -> Iterator[None]:
    def check(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        many = executemany and isinstance(parameters, list | tuple)
        rows = (
            parameters
            if many and all(isinstance(row, list | tuple | dict) for row in parameters)
            else [parameters]
        )
        most = max((len(row) for row in rows if row is not None), default=0)
        if most > SQLITE_MAX_VARIABLES:
            raise AssertionError(f"a statement with {most} parameters: {statement[:200]}")

    event.listen(database.engine.sync_engine, "before_cursor_execute", check)
    try:
        yield
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", check)


async def register(
    db: Database, coordinator: AgentCoordinator, token_id: str, name: str
) -> registry.Registration:
    async with db.session() as session:
        token = await session.get(AgentToken, token_id)
        assert token is not None
        registered = await registry.register(
            session, token, name=name, version="0.1.0", capabilities=["http"], now=coordinator.clock.wall()
        )
        return registered.registration


@pytest.fixture
async def coordinator(database: Database, settings: Settings) -> AsyncIterator[AgentCoordinator]:
    made = AgentCoordinator(database, settings)
    try:
        yield made
    finally:
        await made.stop()


@pytest.fixture
async def patient_coordinator(database: Database, settings: Settings) -> AsyncIterator[AgentCoordinator]:
    """A coordinator whose agents stay live for an hour without renewing: a test that takes longer
    than the missed periods (30 s) on a slow machine must not see its agents lapse midway."""
    made = AgentCoordinator(database, settings.model_copy(update={"agent_lease_seconds": 1200}))
    try:
        yield made
    finally:
        await made.stop()


def _differences(found: dict[str, Any], expected: dict[str, Any]) -> str:
    """What two large mappings differ in, briefly; "" when they are equal. (pytest's own diff of two
    mappings of 70,000 entries, computed for a failing `==`, takes minutes.)"""
    keys = sorted(k for k in found.keys() | expected.keys() if found.get(k) != expected.get(k))
    if not keys:
        return ""
    shown = ", ".join(f"{k}: {found.get(k)} != {expected.get(k)}" for k in keys[:5])
    return f"{len(keys)} of {len(expected)} differ, e.g. {shown}"


async def test_a_region_with_more_monitors_than_a_statement_has_parameters_gets_them_all(
    database: Database, settings: Settings, world: World, patient_coordinator: AgentCoordinator
) -> None:
    coordinator = patient_coordinator
    await set_plan(database, world.org_a, "ENTERPRISE")
    token_id, _ = await create_token(database, settings)
    first = (await register(database, coordinator, token_id, "first")).member_key
    monitor_ids = await insert_monitors(database, world.org_a, MANY)

    assert len(await coordinator.reassign_region(REGION)) == MANY
    assert Counter(key for key, _ in (await active_grants(database)).values()) == {first: MANY}

    # A second agent: about half the monitors move (revoked from the first, granted to it).
    second = (await register(database, coordinator, token_id, "second")).member_key
    moved = await coordinator.reassign_region(REGION)
    grants = await active_grants(database)
    held = Counter(key for key, _ in grants.values())
    assert not set(grants) ^ set(monitor_ids)
    assert held[second] == len(moved) and held[first] + held[second] == MANY
    assert MANY * 0.4 < len(moved) < MANY * 0.6

    # Every monitor changed at once (an import): nothing moves, and the first agent's stream reads
    # the assignments of all of them.
    assert await coordinator.reassign_region(REGION, monitor_ids) == []
    await coordinator.reassign_monitors(set(monitor_ids))
    differences = _differences(await active_grants(database), grants)
    assert not differences, differences
    async with database.session() as session:
        loaded = await load_assignments(session, first, REGION, monitor_ids)
    held_by_first = {monitor_id for monitor_id, (key, _) in grants.items() if key == first}
    assert not set(loaded) ^ held_by_first


# Past SQLite's limit, not PostgreSQL's (its statements take the ids as one array parameter, and the
# test above goes past its limit): on PostgreSQL this would be a slow repeat of ordinary ingest.
@pytest.mark.sqlite_only
async def test_a_batch_naming_more_monitors_than_a_statement_has_parameters_is_stored(
    database: Database, settings: Settings, world: World, coordinator: AgentCoordinator
) -> None:
    token_id, _ = await create_token(database, settings)
    sender = await register(database, coordinator, token_id, "agent-1")
    monitor_ids = await insert_monitors(database, world.org_a, 33_000)
    now = coordinator.clock.wall()
    grants = [
        {"monitor_id": m, "region": REGION, "epoch": 1, "member_key": sender.member_key, "granted_at": now}
        for m in monitor_ids
    ]
    async with database.session() as session:
        await session.execute(insert(AssignmentGrant), grants)
        await session.commit()

    valid, invalid = results_from_proto(
        [check_result(m, 1) for m in monitor_ids],
        region=sender.region,
        agent_id=sender.agent_id,
        now=coordinator.clock.wall(),
    )
    outcome = await ingest_batch(database, sender, valid)

    assert invalid == []
    assert outcome.rejected == [] and outcome.stored == len(monitor_ids)
    async with database.session() as session:
        stored = await session.scalar(select(func.count()).select_from(CheckResult))
    assert stored == len(monitor_ids)


async def _refuse_new_grants(db: Database) -> None:
    async with db.engine.begin() as conn:
        if db.is_sqlite:
            await conn.execute(
                text(
                    "CREATE TRIGGER traxo_test_refuse_grants BEFORE INSERT ON assignment_grants"
                    " BEGIN SELECT RAISE(ABORT, 'grants refused by the test'); END"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE FUNCTION traxo_test_refuse() RETURNS trigger LANGUAGE plpgsql AS"
                    " $$ BEGIN RAISE EXCEPTION 'grants refused by the test'; END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER traxo_test_refuse_grants BEFORE INSERT ON assignment_grants"
                    " FOR EACH ROW EXECUTE FUNCTION traxo_test_refuse()"
                )
            )


async def _accept_grants_again(db: Database) -> None:
    async with db.engine.begin() as conn:
        if db.is_sqlite:
            await conn.execute(text("DROP TRIGGER IF EXISTS traxo_test_refuse_grants"))
        else:
            await conn.execute(text("DROP TRIGGER IF EXISTS traxo_test_refuse_grants ON assignment_grants"))
            await conn.execute(text("DROP FUNCTION IF EXISTS traxo_test_refuse()"))


def _rendered(record: logging.LogRecord) -> str:
    return logging.Formatter("%(levelname)s %(name)s %(message)s").format(record)


async def test_a_failing_rebalance_logs_one_bounded_line_without_its_statement_or_parameters(
    database: Database,
    settings: Settings,
    world: World,
    coordinator: AgentCoordinator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await set_plan(database, world.org_a, "ENTERPRISE")
    token_id, _ = await create_token(database, settings)
    await register(database, coordinator, token_id, "agent-1")
    monitor_ids = await insert_monitors(database, world.org_a, 3_000)
    caplog.set_level(logging.INFO, logger="control_plane.agents")
    await _refuse_new_grants(database)
    try:
        coordinator.reassign_soon(REGION)  # a registration's rebalance
        await coordinator.settle()
        await coordinator.start()  # and the liveness pass, which retries it every half lease

        async def failures() -> list[logging.LogRecord]:
            found = [r for r in caplog.records if r.levelno >= logging.ERROR]
            return found if len(found) >= 2 else []

        records = await eventually(failures, 10, "the rebalance's and the liveness pass's error lines")
        await coordinator.stop()
    finally:
        await _accept_grants_again(database)

    for record in records:
        line = _rendered(record)
        assert len(line) < 1_000, line[:2_000]
        assert "grants refused by the test" in line and "assigner.py" in line, line
        assert "INSERT" not in line.upper(), line[:2_000]
        # Any of them: PostgreSQL's CONTEXT quotes the COPY's failing row, whichever monitor it is.
        assert not set(re.findall(r"mon_[a-z0-9]+", line)) & set(monitor_ids), line
    assert await active_grants(database) == {}


async def test_a_failed_statements_error_does_not_carry_its_parameters(database: Database) -> None:
    secret = "mon_a_parameter_that_must_not_reach_a_log"
    with pytest.raises(DBAPIError) as caught:
        async with database.session() as session:
            await session.execute(text("SELECT no_such_column FROM monitors WHERE id = :id"), {"id": secret})
    assert secret not in str(caught.value)
