"""Agents' batches stored a group at a time (issue 16: 200 agents, each sending a few results every
half second, made 400 transactions a second of 4 results each). Batches waiting while a committer is
busy go into its next transaction together, each fenced by its own sender and answered with its own
outcome; a group that fails is tried batch by batch, so a batch that cannot be stored fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import TimeoutError as PoolTimeout

from control_plane.agents import ingest as ingest_module
from control_plane.agents import registry
from control_plane.agents.convert import results_from_proto
from control_plane.agents.ingest import GrantedResult, IngestGroups, IngestOutcome, RejectReason
from control_plane.db import Database
from control_plane.models import AgentToken, AssignmentGrant, CheckResult
from control_plane.settings import Settings
from tests.agents_server.server_tools import REGION, check_result, create_token, insert_monitors
from tests.conftest import World
from tests.waiting import eventually


class HeldGroups:
    """The real `ingest_together`, recording each group's size; while `gate` is clear, a group
    waits for it before it is stored (a committer busy with a slow transaction)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing: set[str] = set()  # a group holding a batch of one of these monitors fails
        self.unavailable = False  # every group fails as with the pool exhausted
        self.stuck_at: int | None = None  # the call of this number never ends (a database hung)
        self.real = ingest_module.ingest_together

    async def __call__(self, db: Database, batches: Sequence[Any], **kwargs: Any) -> list[IngestOutcome]:
        self.sizes.append(len(batches))
        await self.gate.wait()
        if len(self.sizes) == self.stuck_at:
            await asyncio.Event().wait()
        if self.unavailable:
            raise PoolTimeout("QueuePool limit of size 40 overflow 0 reached, connection timed out")
        if any(granted.result.monitor_id in self.failing for _, results in batches for granted in results):
            raise RuntimeError("this batch cannot be stored")
        return await self.real(db, batches, **kwargs)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> HeldGroups:
    counted = HeldGroups()
    monkeypatch.setattr(ingest_module, "ingest_together", counted)
    return counted


@pytest.fixture
async def groups(database: Database) -> AsyncIterator[IngestGroups]:
    made = IngestGroups(database, committers=1)
    made.start()
    try:
        yield made
    finally:
        await made.stop()


async def agent_holding(
    db: Database,
    token_id: str,
    name: str,
    world: World,
    *counts: int,
    org: str | None = None,
    region: str = REGION,
) -> tuple[registry.Registration, list[list[str]]]:
    """A registered agent of the token, and `counts` new monitors of `org`'s (A's unless given; each
    count a list), every one granted to it (epoch 1) in `region`."""
    now = datetime.now(UTC)
    async with db.session() as session:
        token = await session.get(AgentToken, token_id)
        assert token is not None
        registered = await registry.register(
            session, token, name=name, version="0.1.0", capabilities=["http"], now=now
        )
    member = registered.registration
    held = [await insert_monitors(db, org or world.org_a, count, regions=[region]) for count in counts]
    async with db.session() as session:
        await session.execute(
            insert(AssignmentGrant),
            [
                {
                    "monitor_id": m,
                    "region": region,
                    "epoch": 1,
                    "member_key": member.member_key,
                    "granted_at": now,
                }
                for ids in held
                for m in ids
            ],
        )
        await session.commit()
    return member, held


def batch(member: registry.Registration, monitor_ids: Sequence[str]) -> list[GrantedResult]:
    valid, invalid = results_from_proto(
        [check_result(m, 1, region=member.region) for m in monitor_ids],
        region=member.region,
        agent_id=member.agent_id,
        now=datetime.now(UTC),
    )
    assert invalid == []
    return valid


async def stored_count(db: Database, result_ids: Sequence[str]) -> int:
    async with db.session() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(CheckResult).where(CheckResult.id.in_(result_ids))
            )
            or 0
        )


async def test_batches_waiting_together_are_stored_in_one_transaction_each_with_its_own_outcome(
    database: Database, settings: Settings, world: World, groups: IngestGroups, held: HeldGroups
) -> None:
    token_id, _ = await create_token(database, settings)
    first, [mine] = await agent_holding(database, token_id, "agent-1", world, 3)
    second, [theirs] = await agent_holding(database, token_id, "agent-2", world, 3)

    held.gate.clear()
    alone = asyncio.create_task(groups.ingest(first, batch(first, mine)))
    await eventually(lambda: held.sizes == [1], 10, "the first batch taken alone")
    # While the committer is busy, three batches arrive: one of them names a monitor granted to
    # the other agent, and one repeats a result of another batch (a replay on a new stream).
    fenced = batch(first, [*mine, theirs[0]])
    others = batch(second, theirs)
    replayed = [others[0], *batch(second, theirs[1:])]
    waiting = [
        asyncio.create_task(groups.ingest(first, fenced)),
        asyncio.create_task(groups.ingest(second, others)),
        asyncio.create_task(groups.ingest(second, replayed)),
    ]
    await asyncio.sleep(0.2)
    held.gate.set()
    first_outcome = await asyncio.wait_for(alone, 10)
    outcomes = await asyncio.wait_for(asyncio.gather(*waiting), 10)

    assert held.sizes == [1, 3], "the three that waited went in together"
    assert (first_outcome.stored, first_outcome.duplicates, first_outcome.rejected) == (3, 0, [])
    fenced_outcome, others_outcome, replayed_outcome = outcomes
    assert (fenced_outcome.stored, fenced_outcome.duplicates) == (3, 0)
    assert [(r.result_id, r.reason) for r in fenced_outcome.rejected] == [
        (fenced[-1].result.id, RejectReason.FENCED)
    ]
    assert (others_outcome.stored, others_outcome.duplicates, others_outcome.rejected) == (3, 0, [])
    assert (replayed_outcome.stored, replayed_outcome.duplicates, replayed_outcome.rejected) == (2, 1, [])
    every_id = [g.result.id for g in [*fenced, *others, *replayed]]
    assert await stored_count(database, every_id) == 3 + 3 + 2


async def test_two_organizations_batches_in_one_group_each_store_only_their_own(
    database: Database, settings: Settings, world: World, groups: IngestGroups, held: HeldGroups
) -> None:
    # A's monitors run in a public region; B has a private location. B's agent names one of A's
    # monitors, as an agent that learned an id would: it is told what it would be told of an id
    # that was never made, and nothing of it is stored, though A's own batch shares its transaction.
    public_token, _ = await create_token(database, settings)
    b_token, _ = await create_token(database, settings, region="b-office", org=world.org_b)
    a_agent, [a_monitors] = await agent_holding(database, public_token, "public-1", world, 2)
    b_agent, [b_monitors] = await agent_holding(
        database, b_token, "b-1", world, 2, org=world.org_b, region="b-office"
    )
    never_made = "mon_" + "0" * 24

    held.gate.clear()
    blocker = asyncio.create_task(groups.ingest(a_agent, batch(a_agent, a_monitors[:1])))
    await eventually(lambda: held.sizes == [1], 10, "the committer busy")
    a_batch = batch(a_agent, a_monitors)
    b_batch = batch(b_agent, [*b_monitors, a_monitors[1], never_made])
    waiting = [
        asyncio.create_task(groups.ingest(b_agent, b_batch)),
        asyncio.create_task(groups.ingest(a_agent, a_batch)),
    ]
    await asyncio.sleep(0.2)
    held.gate.set()
    await asyncio.wait_for(blocker, 10)
    b_outcome, a_outcome = await asyncio.wait_for(asyncio.gather(*waiting), 10)

    assert held.sizes == [1, 2], "both organizations' batches in one transaction"
    assert (a_outcome.stored, a_outcome.rejected) == (2, [])
    assert b_outcome.stored == 2
    foreign, unknown = b_outcome.rejected
    assert foreign.result_id == b_batch[2].result.id and unknown.result_id == b_batch[3].result.id
    assert (foreign.reason, foreign.message) == (unknown.reason, unknown.message)
    assert foreign.reason == RejectReason.UNKNOWN_MONITOR
    async with database.session() as session:
        on_a_monitor = (
            await session.execute(
                select(CheckResult.id, CheckResult.region).where(CheckResult.monitor_id == a_monitors[1])
            )
        ).all()
    assert on_a_monitor == [(a_batch[1].result.id, REGION)], "only A's own result on A's monitor"
    assert await stored_count(database, [g.result.id for g in b_batch[:2]]) == 2


async def test_a_group_that_fails_is_stored_batch_by_batch_and_only_the_bad_batch_fails(
    database: Database, settings: Settings, world: World, groups: IngestGroups, held: HeldGroups
) -> None:
    token_id, _ = await create_token(database, settings)
    member, [good, bad] = await agent_holding(database, token_id, "agent-1", world, 4, 1)
    held.failing = set(bad)

    held.gate.clear()
    blocker = asyncio.create_task(groups.ingest(member, batch(member, good[:1])))
    await eventually(lambda: held.sizes == [1], 10, "the committer busy")
    batches = [batch(member, good[1:2]), batch(member, bad), batch(member, good[2:])]
    tasks = [asyncio.create_task(groups.ingest(member, b)) for b in batches]
    await asyncio.sleep(0.2)
    held.gate.set()
    await asyncio.wait_for(blocker, 10)
    answers = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)

    assert held.sizes == [1, 3, 1, 1, 1], "the group of three, then each alone"
    assert isinstance(answers[0], IngestOutcome) and answers[0].stored == 1
    assert isinstance(answers[1], RuntimeError)
    assert isinstance(answers[2], IngestOutcome) and answers[2].stored == 2
    assert await stored_count(database, [g.result.id for b in batches for g in b]) == 3


async def test_batches_still_waiting_when_the_committers_stop_fail_rather_than_hang(
    database: Database, settings: Settings, world: World, held: HeldGroups
) -> None:
    token_id, _ = await create_token(database, settings)
    member, [monitor_ids] = await agent_holding(database, token_id, "agent-1", world, 2)
    groups = IngestGroups(database, committers=1)
    groups.start()
    held.gate.clear()
    taken = asyncio.create_task(groups.ingest(member, batch(member, monitor_ids[:1])))
    await eventually(lambda: held.sizes == [1], 10, "the committer busy")
    waiting = asyncio.create_task(groups.ingest(member, batch(member, monitor_ids[1:])))
    await asyncio.sleep(0.1)

    await asyncio.wait_for(groups.stop(), 10)

    for task in (taken, waiting):
        with pytest.raises(RuntimeError, match="committers stopped"):
            await asyncio.wait_for(task, 10)
    with pytest.raises(RuntimeError, match="not running"):
        await groups.ingest(member, batch(member, monitor_ids))


async def test_a_group_failing_for_want_of_the_database_fails_every_batch_at_once(
    database: Database, settings: Settings, world: World, groups: IngestGroups, held: HeldGroups
) -> None:
    # Tried one by one, a group of 30 would wait out 30 pool timeouts (30 s each) before its last
    # answer, its streams holding the bound meanwhile.
    token_id, _ = await create_token(database, settings)
    member, [monitor_ids] = await agent_holding(database, token_id, "agent-1", world, 4)

    held.gate.clear()
    blocker = asyncio.create_task(groups.ingest(member, batch(member, monitor_ids[:1])))
    await eventually(lambda: held.sizes == [1], 10, "the committer busy")
    tasks = [asyncio.create_task(groups.ingest(member, batch(member, [m]))) for m in monitor_ids[1:]]
    await asyncio.sleep(0.2)
    held.unavailable = True
    held.gate.set()
    answers = await asyncio.wait_for(asyncio.gather(blocker, *tasks, return_exceptions=True), 10)

    assert held.sizes == [1, 3], "the group of three failed once, not tried batch by batch"
    assert all(isinstance(answer, PoolTimeout) for answer in answers)


async def test_a_committer_stopped_while_it_tries_a_failed_group_batch_by_batch_answers_every_batch(
    database: Database, settings: Settings, world: World, held: HeldGroups
) -> None:
    token_id, _ = await create_token(database, settings)
    member, [good, bad] = await agent_holding(database, token_id, "agent-1", world, 3, 1)
    groups = IngestGroups(database, committers=1)
    groups.start()
    held.failing = set(bad)
    held.stuck_at = 3  # the group of three fails, then its first batch, alone, never ends
    held.gate.clear()
    blocker = asyncio.create_task(groups.ingest(member, batch(member, good[:1])))
    await eventually(lambda: held.sizes == [1], 10, "the committer busy")
    tasks = [asyncio.create_task(groups.ingest(member, batch(member, m))) for m in (good[1:2], bad, good[2:])]
    await asyncio.sleep(0.2)
    held.gate.set()
    await asyncio.wait_for(blocker, 10)
    await eventually(lambda: held.sizes == [1, 3, 1], 10, "the first batch tried alone")

    await asyncio.wait_for(groups.stop(), 10)

    answers = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert all(isinstance(answer, RuntimeError) for answer in answers), answers
