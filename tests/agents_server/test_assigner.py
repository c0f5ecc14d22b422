"""Rendezvous assignment over real rows: tokens, registrations, monitors and grants."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from control_plane.agents import assigner, registry
from control_plane.agents.assigner import Liveness, choose_member, live_members, reassign
from control_plane.agents.coordinator import RECONNECT_ALLOWANCE, AgentCoordinator
from control_plane.agents.leases import renew_agents
from control_plane.core.errors import Conflict
from control_plane.db import Database
from control_plane.models import Agent, AgentToken, Monitor
from control_plane.services.regions import known_regions
from control_plane.settings import Settings
from tests.agents_server.server_tools import (
    REGION,
    active_grants,
    create_token,
    grant_history,
)
from tests.conftest import World
from tests.factories import insert_monitor
from tests.monitor_tools import set_plan

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=10)
BASIC = ("http", "tcp", "dns", "ssl")


def liveness(now: datetime = NOW, started_at: datetime | None = None) -> Liveness:
    """Judging at `now`; with `started_at`, by a coordinator started then and still in its grace."""
    if started_at is None:
        return Liveness(now, LEASE, 3, now - timedelta(hours=1), now - timedelta(minutes=59))
    return Liveness(now, LEASE, 3, started_at, now + timedelta(seconds=1))


async def register(
    db: Database, token_id: str, name: str, *, now: datetime = NOW, capabilities: tuple[str, ...] = BASIC
) -> str:
    async with db.session() as session:
        token = await session.get(AgentToken, token_id)
        assert token is not None
        registered = await registry.register(
            session, token, name=name, version="0.1.0", capabilities=list(capabilities), now=now
        )
        return registered.registration.member_key


async def rebalance(db: Database, region: str = REGION, live: Liveness | None = None) -> list[str]:
    async with db.session() as session:
        return await reassign(session, region, live or liveness())


async def lapse(db: Database, region: str, live: Liveness) -> int:
    assert live.cutoff is not None
    async with db.session() as session:
        return await registry.expire_lapsed(session, region, cutoff=live.cutoff, now=live.now)


async def monitors(db: Database, org_id: str, count: int, **fields: object) -> list[str]:
    return [(await insert_monitor(db, org_id, **fields)).id for _ in range(count)]


async def test_every_monitor_goes_to_exactly_one_live_member(
    database: Database, settings: Settings, world: World
) -> None:
    token_id, _ = await create_token(database, settings)
    keys = [await register(database, token_id, name) for name in ("a", "b", "c")]
    ours = await monitors(database, world.org_a, 40)
    elsewhere = await monitors(database, world.org_a, 3, regions=["eu-west-1"])
    passive = await monitors(database, world.org_a, 2, type="HEARTBEAT", url=None)

    changed = await rebalance(database)

    grants = await active_grants(database)
    assert sorted(changed) == sorted(ours)
    assert set(grants) == set(ours)
    assert not set(grants) & set(elsewhere + passive)
    assert {key for key, _ in grants.values()} == set(keys)  # 40 monitors over 3 members: all get some
    async with database.session() as session:
        members = await live_members(session, REGION, liveness())
    for monitor_id, (key, epoch) in grants.items():
        assert key == choose_member(monitor_id, "HTTP", members)
        assert epoch == 1
    assert await rebalance(database) == []  # idempotent
    assert await active_grants(database) == grants


async def test_a_pass_hashes_only_what_its_membership_changed(
    database: Database, settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The liveness pass's safety net makes a full pass of every region each minute: for the same
    # members it finds the same owners, and hashing them all again cost a tenth of a busy process.
    # At the start agents join a region over several passes, each of which hashed everything
    # against everyone: a newcomer is all a monitor needs to be weighed against.
    hashed: list[tuple[str, str]] = []
    real = assigner.rendezvous_weight

    def counted(monitor_id: str, member_key: str) -> int:
        hashed.append((monitor_id, member_key))
        return real(monitor_id, member_key)

    async def owners_are_rendezvous_over_the_live_members() -> dict[str, tuple[str, int]]:
        grants = await active_grants(database)
        async with database.session() as session:
            members = await live_members(session, REGION, liveness())
        assert set(grants) == set(ours)
        for monitor_id, (key, _) in grants.items():
            assert key == choose_member(monitor_id, "BROWSER" if monitor_id == moved else "HTTP", members)
        return grants

    monkeypatch.setattr(assigner, "rendezvous_weight", counted)
    await set_plan(database, world.org_a, "ENTERPRISE")
    token_id, _ = await create_token(database, settings)
    first, second = [await register(database, token_id, name) for name in ("a", "b")]
    browser = await register(database, token_id, "browser", capabilities=(*BASIC, "browser"))
    ours = await monitors(database, world.org_a, 40)
    moved = ""
    await rebalance(database)
    assert len(hashed) == 40 * 3
    grants = await owners_are_rendezvous_over_the_live_members()

    hashed.clear()
    assert await rebalance(database) == []
    assert hashed == [], "the same members: every owner remembered"
    assert await active_grants(database) == grants

    # A monitor that became a browser check is hashed again, and only the browser agent can run it.
    moved = next(m for m in ours if grants[m][0] != browser)
    async with database.session() as session:
        await session.execute(update(Monitor).where(Monitor.id == moved).values(type="BROWSER"))
        await session.commit()
    assert await rebalance(database) == [moved]
    assert [m for m, _ in hashed] == [moved]
    assert (await active_grants(database))[moved][0] == browser

    # A newcomer: each monitor it can run is weighed against it alone, and only what it wins moves.
    # A monitor's edit meanwhile (a pass of that monitor alone) leaves the memo to the full pass.
    hashed.clear()
    newcomer = await register(database, token_id, "c")
    edited = next(m for m in ours if m != moved)
    async with database.session() as session:
        changed = await reassign(session, REGION, liveness(), monitor_ids=[edited])
    assert hashed == [(edited, newcomer)]
    hashed.clear()
    changed += await rebalance(database)
    assert sorted(hashed) == sorted((m, newcomer) for m in ours if m != moved)
    after = await owners_are_rendezvous_over_the_live_members()
    assert changed and {after[m][0] for m in changed} == {newcomer}
    assert all(after[m] == grants[m] for m in ours if m not in changed and m != moved)

    # A member that leaves: only the monitors it held are weighed again, against everyone left.
    hashed.clear()
    held = {m for m, (key, _) in after.items() if key == first}
    assert held
    async with database.session() as session:
        await session.execute(update(Agent).where(Agent.member_key == first).values(lapsed_at=NOW))
        await session.commit()
    changed = await rebalance(database)
    assert sorted(changed) == sorted(held)
    assert {m for m, _ in hashed} == held
    assert sorted(hashed) == sorted((m, key) for m in held for key in (second, browser, newcomer))
    await owners_are_rendezvous_over_the_live_members()


async def test_adding_a_member_moves_only_the_monitors_it_wins(
    database: Database, settings: Settings, world: World
) -> None:
    token_id, _ = await create_token(database, settings)
    for name in ("a", "b"):
        await register(database, token_id, name)
    await monitors(database, world.org_a, 40)
    await rebalance(database)
    before = await active_grants(database)

    newcomer = await register(database, token_id, "c")
    changed = await rebalance(database)

    after = await active_grants(database)
    won = {m for m, (key, _) in after.items() if key == newcomer}
    assert won and sorted(changed) == sorted(won)
    for monitor_id, (key, epoch) in after.items():
        if monitor_id in won:
            assert epoch == before[monitor_id][1] + 1
        else:
            assert (key, epoch) == before[monitor_id]


async def test_a_lapsed_member_loses_only_its_monitors(
    database: Database, settings: Settings, world: World
) -> None:
    token_id, _ = await create_token(database, settings)
    stale = await register(database, token_id, "a", now=NOW - timedelta(seconds=31))
    for name in ("b", "c"):
        await register(database, token_id, name, now=NOW)
    await monitors(database, world.org_a, 40)
    await rebalance(database, live=liveness(NOW, started_at=NOW))  # in a grace: all three
    before = await active_grants(database)
    held = {m for m, (key, _) in before.items() if key == stale}
    assert held

    live = liveness(NOW)
    assert await lapse(database, REGION, live) == 1
    changed = await rebalance(database, live=live)

    after = await active_grants(database)
    assert sorted(changed) == sorted(held)
    assert set(after) == set(before)
    for monitor_id, (key, epoch) in after.items():
        if monitor_id in held:
            assert key != stale and epoch == before[monitor_id][1] + 1
        else:
            assert (key, epoch) == before[monitor_id]
    async with database.session() as session:
        token = await session.get(AgentToken, token_id)
        assert token is not None
        assert await renew_agents(session, token.id, ["agt_unknown"], now=NOW) == set()


async def test_a_member_renewing_within_the_missed_periods_keeps_its_monitors(
    database: Database, settings: Settings, world: World
) -> None:
    token_id, _ = await create_token(database, settings)
    late = await register(database, token_id, "a", now=NOW - timedelta(seconds=29))
    await register(database, token_id, "b", now=NOW)
    await monitors(database, world.org_a, 20)
    live = liveness(NOW)
    await rebalance(database, live=live)
    assert await lapse(database, REGION, live) == 0
    assert await rebalance(database, live=live) == []
    assert late in {key for key, _ in (await active_grants(database)).values()}


async def test_types_go_only_to_members_with_the_capability(
    database: Database, settings: Settings, world: World
) -> None:
    await set_plan(database, world.org_a, "ENTERPRISE")
    token_id, _ = await create_token(database, settings)
    plain = await register(database, token_id, "plain", capabilities=BASIC)
    icmp = await register(database, token_id, "icmp", capabilities=(*BASIC, "icmp"))
    browser = await register(database, token_id, "browser", capabilities=(*BASIC, "browser"))
    pings = await monitors(database, world.org_a, 8, type="PING", url="127.0.0.1")
    browsers = await monitors(database, world.org_a, 8, type="BROWSER")
    https = await monitors(database, world.org_a, 30)

    await rebalance(database)

    grants = await active_grants(database)
    assert {grants[m][0] for m in pings} == {icmp}
    assert {grants[m][0] for m in browsers} == {browser}
    assert {grants[m][0] for m in https} == {plain, icmp, browser}

    # The only icmp member goes away: PING monitors are left unassigned rather than given to others.
    async with database.session() as session:
        await session.execute(update(Agent).where(Agent.member_key == icmp).values(lapsed_at=NOW))
        await session.commit()
    await rebalance(database)
    grants = await active_grants(database)
    assert not set(pings) & set(grants)
    assert {grants[m][0] for m in browsers} == {browser}


async def test_a_private_location_runs_only_its_organizations_monitors(
    api: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    for org_id in (world.org_a, world.org_b):
        await set_plan(database, org_id, "ENTERPRISE")
    token_id, _ = await create_token(database, settings, region="acme-dc", org=world.org_a)
    await register(database, token_id, "dc-1")
    ours = await monitors(database, world.org_a, 5, regions=["acme-dc", REGION])
    theirs = await monitors(database, world.org_b, 5, regions=["acme-dc"])  # written around the API

    await rebalance(database, "acme-dc")

    assert set(await active_grants(database, "acme-dc")) == set(ours)
    async with database.session() as session:
        assert "acme-dc" in await known_regions(session, settings, world.org_a)
        assert "acme-dc" not in await known_regions(session, settings, world.org_b)
    response = await api.post(
        "/api/monitors",
        json={"name": "x", "type": "HTTP", "url": "https://b.example/", "regions": ["acme-dc"]},
        headers=world.bob.headers,
    )
    assert response.status_code == 400 and "acme-dc" in response.json()["error"], response.text
    response = await api.post(
        "/api/monitors",
        json={"name": "x", "type": "HTTP", "url": "https://a.example/", "regions": ["acme-dc"]},
        headers=world.alice.headers,
    )
    assert response.status_code == 201, response.text
    # The region name belongs to org A: neither a public token nor org B's may take it.
    for org in (None, world.org_b):
        with pytest.raises(Conflict):
            await create_token(database, settings, region="acme-dc", org=org)
    assert theirs


async def test_epochs_strictly_increase_with_every_change_of_owner(
    database: Database, settings: Settings, world: World
) -> None:
    token_id, _ = await create_token(database, settings)
    monitor_id = (await insert_monitor(database, world.org_a)).id
    names = ["a", "b", "c", "d"]
    now = NOW
    for name in names:
        await register(database, token_id, name, now=now)
    await rebalance(database, live=liveness(now))
    # Drop whoever holds it, again and again; then bring everyone back.
    for _ in range(3):
        owner = (await active_grants(database))[monitor_id][0]
        async with database.session() as session:
            await session.execute(update(Agent).where(Agent.member_key == owner).values(lapsed_at=now))
            await session.commit()
        now += timedelta(seconds=1)
        await rebalance(database, live=liveness(now))
    for name in names:
        await register(database, token_id, name, now=now)
    await rebalance(database, live=liveness(now))

    history = await grant_history(database, monitor_id)
    epochs = [grant.epoch for grant in history]
    assert epochs == sorted(set(epochs)) and len(epochs) >= 4
    assert [grant.revoked_at is None for grant in history] == [False] * (len(history) - 1) + [True]
    for before, after in pairwise(history):
        assert before.member_key != after.member_key
        assert before.revoked_at is not None and before.revoked_at <= after.granted_at


async def test_paused_and_deleted_monitors_lose_their_grants(
    database: Database, settings: Settings, world: World
) -> None:
    token_id, _ = await create_token(database, settings)
    await register(database, token_id, "a")
    paused, deleted, kept = await monitors(database, world.org_a, 3)
    await rebalance(database)
    async with database.session() as session:
        await session.execute(update(Monitor).where(Monitor.id == paused).values(is_active=False))
        await session.execute(delete(Monitor).where(Monitor.id == deleted))
        await session.commit()

    changed = await rebalance(database)

    assert changed == [paused]
    assert set(await active_grants(database)) == {kept}
    assert await grant_history(database, deleted) == []
    # Resuming grants it again under a larger epoch.
    async with database.session() as session:
        await session.execute(update(Monitor).where(Monitor.id == paused).values(is_active=True))
        await session.commit()
    async with database.session() as session:
        assert await reassign(session, REGION, liveness(), monitor_ids=[paused]) == [paused]
    assert [g.epoch for g in await grant_history(database, paused)] == [1, 2]


class ManualClock:
    """A control_plane.agents.clock.Clock that moves only when a test sets `now`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()


async def test_a_started_coordinator_judges_nobody_during_its_grace_period(
    database: Database, settings: Settings, world: World
) -> None:
    """A control plane back from an outage has seen no renewals: it must not move monitors of agents
    connected before it started until they had their missed periods plus a reconnect to reach it."""
    lease = timedelta(seconds=settings.agent_lease_seconds)
    grace = lease * settings.agent_lease_missed_periods + RECONNECT_ALLOWANCE
    token_id, _ = await create_token(database, settings)
    start = datetime.now(UTC)
    silent = await register(database, token_id, "silent", now=start - timedelta(hours=1))
    monitor_ids = await monitors(database, world.org_a, 10)
    clock = ManualClock(start)
    coordinator = AgentCoordinator(database, settings, clock=clock)

    clock.now = start + grace - timedelta(seconds=1)
    await coordinator.check_liveness()
    assert {key for key, _ in (await active_grants(database)).values()} == {silent}

    fresh = await register(database, token_id, "fresh", now=start + grace)
    clock.now = start + grace + timedelta(seconds=1)
    await coordinator.check_liveness()

    grants = await active_grants(database)
    assert set(grants) == set(monitor_ids)
    assert {key for key, _ in grants.values()} == {fresh}
    async with database.session() as session:
        lapsed = await session.scalar(select(Agent.lapsed_at).where(Agent.member_key == silent))
    assert lapsed is not None


async def test_during_the_grace_an_agent_registered_since_the_start_is_judged_as_usual(
    database: Database, settings: Settings, world: World
) -> None:
    lease = timedelta(seconds=settings.agent_lease_seconds)
    token_id, _ = await create_token(database, settings)
    start = datetime.now(UTC)
    clock = ManualClock(start)
    coordinator = AgentCoordinator(database, settings, clock=clock)
    earlier = await register(database, token_id, "earlier", now=start - timedelta(hours=1))
    died = await register(database, token_id, "died", now=start + timedelta(seconds=1))
    monitor_ids = await monitors(database, world.org_a, 20)
    clock.now = start + timedelta(seconds=2)
    await coordinator.check_liveness()
    assert {key for key, _ in (await active_grants(database)).values()} == {earlier, died}

    clock.now = start + timedelta(seconds=2) + lease * settings.agent_lease_missed_periods
    assert clock.now < coordinator.liveness().grace_until
    await coordinator.check_liveness()

    grants = await active_grants(database)
    assert set(grants) == set(monitor_ids) and {key for key, _ in grants.values()} == {earlier}


class DatabaseGoingAway:
    """The suite's database as a coordinator sees it: unreachable while `down` is set."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.down = False

    def session(self) -> Any:
        if self.down:
            raise psycopg.OperationalError("connection failed: Connection refused")
        return self._db.session()


async def test_a_database_outage_longer_than_the_missed_periods_lapses_nobody_at_its_end(
    database: Database, settings: Settings, world: World
) -> None:
    """No renewal is written while the database is away: once it is back, every lease is older than
    its missed periods. Lapsing every agent then would move every monitor at once; the agents get
    the grace of a restart instead, and those that do not renew in it are judged after it."""
    lease = timedelta(seconds=settings.agent_lease_seconds)
    missed = lease * settings.agent_lease_missed_periods
    grace = missed + RECONNECT_ALLOWANCE
    token_id, _ = await create_token(database, settings)
    start = datetime.now(UTC)
    clock = ManualClock(start)
    reachable = DatabaseGoingAway(database)
    coordinator = AgentCoordinator(reachable, settings, clock=clock)  # type: ignore[arg-type]
    live = await register(database, token_id, "live", now=start + grace)
    died = await register(database, token_id, "died", now=start + grace)
    monitor_ids = await monitors(database, world.org_a, 20)
    clock.now = start + grace + timedelta(seconds=1)  # the start's own grace is over
    await coordinator.liveness_pass()
    assert {key for key, _ in (await active_grants(database)).values()} == {live, died}

    reachable.down = True  # three times the missed periods, a pass every half lease failing
    back_at = clock.now + 3 * missed
    while clock.now < back_at:
        clock.now += lease / 2
        await coordinator.liveness_pass()
    reachable.down = False
    clock.now += lease / 2
    await coordinator.liveness_pass()
    async with database.session() as session:
        lapsed = (await session.scalars(select(Agent.member_key).where(Agent.lapsed_at.is_not(None)))).all()
    assert lapsed == []
    assert {key for key, _ in (await active_grants(database)).values()} == {live, died}

    clock.now = back_at + grace + lease  # the grace is over; `live` renewed in it, `died` did not
    async with database.session() as session:
        await session.execute(
            update(Agent).where(Agent.member_key == live).values(renewed_at=clock.now - lease)
        )
        await session.commit()
    await coordinator.liveness_pass()
    grants = await active_grants(database)
    assert set(grants) == set(monitor_ids) and {key for key, _ in grants.values()} == {live}
    async with database.session() as session:
        lapsed = (await session.scalars(select(Agent.member_key).where(Agent.lapsed_at.is_not(None)))).all()
    assert lapsed == [died]


async def test_a_busy_database_restarts_no_grace(database: Database, settings: Settings) -> None:
    """A pool checkout timing out or SQLite's file locked is a busy database, whose renewals still
    get through: a grace restarted on each would spare a dead agent for as long as the load lasts."""
    start = datetime.now(UTC)
    clock = ManualClock(start)
    coordinator = AgentCoordinator(database, settings, clock=clock)
    locked = OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))
    for busy in (PoolTimeout("QueuePool limit of size 20 overflow 20 reached"), locked):
        clock.now += timedelta(seconds=5)
        assert coordinator._outage_noted("the agents' liveness pass", busy)
        assert coordinator.started_at == start
    clock.now += timedelta(seconds=5)
    assert coordinator._outage_noted("the agents' liveness pass", psycopg.OperationalError("refused"))
    assert coordinator.started_at == clock.now
