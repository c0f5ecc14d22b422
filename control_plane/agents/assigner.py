"""Who runs what: rendezvous hashing of a region's monitors over its live agents, with epochs.

Each (monitor, region) goes to the live member (token + agent name) with the highest hash of the
pair among those able to run its type. Adding or losing a member moves only the monitors it wins
or held. Every change of owner revokes the old grant and opens a new one with a larger epoch; the
results path uses the grants to fence off what an agent ran after it lost a monitor.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core import changes
from control_plane.core.id_sets import among
from control_plane.db import copy_rows, psycopg_connection
from control_plane.domain.monitor_config import PASSIVE_TYPES
from control_plane.models import Agent, AgentToken, AssignmentGrant, Monitor
from control_plane.observability.metrics import ASSIGNMENT_CHANGES
from traxo_protocol.capabilities import CAPABILITY_FOR_TYPE

log = logging.getLogger(__name__)

ASSIGNMENTS_TOPIC = "assignments"  # payload: "region" (all of it changed) or "region:monitor_id"


@dataclass(frozen=True, slots=True)
class Member:
    key: str
    capabilities: frozenset[str]


@dataclass(frozen=True, slots=True)
class Liveness:
    """When a registration counts as alive: renewed within `missed_periods` leases.

    A control plane that started at `started_at` saw no renewals before then, so until
    `grace_until` it judges no registration last renewed before its start (its own outage must move
    nothing while agents find their way back); registrations renewed since are judged as usual.
    """

    now: datetime
    lease: timedelta
    missed_periods: int
    started_at: datetime
    grace_until: datetime

    @property
    def cutoff(self) -> datetime:
        return self.now - self.lease * self.missed_periods

    @property
    def spared_before(self) -> datetime | None:
        """Registrations last renewed before this are spared (None once the grace period is over)."""
        return self.started_at if self.now < self.grace_until else None


def rendezvous_weight(monitor_id: str, member_key: str) -> int:
    digest = hashlib.blake2b(f"{monitor_id}\x00{member_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _best(
    monitor_id: str, needed: str | None, members: Collection[Member], best: tuple[int, str] | None = None
) -> tuple[int, str] | None:
    """The highest (weight, key) among `best` and those of `members` able to run what needs `needed`."""
    for member in members:
        if needed is not None and needed not in member.capabilities:
            continue
        weight = (rendezvous_weight(monitor_id, member.key), member.key)
        if best is None or weight > best:
            best = weight
    return best


def choose_member(monitor_id: str, monitor_type: str, members: Sequence[Member]) -> str | None:
    best = _best(monitor_id, CAPABILITY_FOR_TYPE.get(monitor_type), members)
    return best[1] if best else None


async def live_members(session: AsyncSession, region: str, liveness: Liveness) -> list[Member]:
    query = select(Agent.member_key, Agent.capabilities).where(
        Agent.region == region, Agent.lapsed_at.is_(None)
    )
    alive = Agent.renewed_at >= liveness.cutoff
    spared_before = liveness.spared_before
    if spared_before is not None:
        alive = or_(alive, Agent.renewed_at < spared_before)
    query = query.where(alive)
    return [Member(key, frozenset(caps)) for key, caps in (await session.execute(query)).all()]


async def _region_owner_org(session: AsyncSession, region: str) -> str | None:
    """The organization owning a private region (from its live tokens); None for a shared one."""
    owners = set(
        await session.scalars(
            select(AgentToken.org_id)
            .where(AgentToken.region == region, AgentToken.revoked_at.is_(None))
            .distinct()
        )
    )
    private = [owner for owner in owners if owner is not None]
    return private[0] if private else None


async def _lock_region(session: AsyncSession, region: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(
            hashlib.blake2b(f"assign:{region}".encode(), digest_size=8).digest(), "big", signed=True
        )
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def _announce(session: AsyncSession, region: str, monitor_ids: set[str], *, whole_region: bool) -> None:
    """Tell the region's streams which monitors to look at again: each by id, or (a full pass, or
    more than 50 of them: one notification instead of thousands) the whole region."""
    if whole_region or len(monitor_ids) > 50:
        await changes.publish(session, ASSIGNMENTS_TOPIC, region)
        return
    for monitor_id in sorted(monitor_ids):
        await changes.publish(session, ASSIGNMENTS_TOPIC, f"{region}:{monitor_id}")


# How many monitors the hashing thread hashes between two looks at its pass's cancellation.
_HASHED_BETWEEN_LOOKS = 256


class _PassCancelled(Exception):
    """The pass the hashing thread works for was cancelled: its thread stops too."""


class _OwnerMemo:
    """A region's owners as its last pass hashed them: per monitor its type and its winning
    (weight, member key) among `members`.

    Rendezvous hashing is a pure function of the monitor and the members, and the liveness pass's
    safety-net full pass of each region, every minute, found the same owners for the same members:
    10,000 monitors x 10 agents hashed for nothing, a tenth of a busy process's time (200 agents,
    100,000 monitors: bench/agents_at_scale.py). The start is worse: agents join a region over
    several passes, each of which hashed every monitor against every member, in a thread whose
    hold on the GIL kept the event loop from the agents' calls. So a pass hashes a monitor only
    against the members that joined since the memo: the winner among the others is remembered.
    A monitor whose winner left, or whose type changed, is hashed against every member. (A member
    whose capabilities changed counts as one that left and one that joined.)

    Only a full pass makes a memo, of the monitors it read, so a memo never outgrows its region. A
    partial pass (a monitor's edit) adds to a memo of the same members; one of other members leaves
    the memo as it was, for the next full pass to start from (replaced by the few monitors the
    partial pass read, it would make that pass weigh everything against everyone)."""

    __slots__ = ("members", "owners")

    def __init__(
        self, members: frozenset[Member], owners: dict[str, tuple[str, tuple[int, str] | None]]
    ) -> None:
        self.members = members
        # monitor id -> (type, its winner's (weight, key), None when no member can run it)
        self.owners = owners


_memos: dict[str, _OwnerMemo] = {}  # region -> its memo; each region's passes take turns (region locks)


def _owners(
    region: str,
    monitor_rows: Sequence[Any],
    members: Sequence[Member],
    owner_org: str | None,
    cancelled: threading.Event,
    *,
    full: bool = False,
) -> dict[str, str | None]:
    """Monitor id -> its owner among `members` (None: none can run it), for the monitors of the
    region (of `owner_org` only, in a private region). Raises _PassCancelled soon after
    `cancelled` is set. `full`: the rows are all the region's monitors (the memo keeps only them)."""
    membership = frozenset(members)
    memo = _memos.get(region) or _OwnerMemo(frozenset(), {})
    joined = [m for m in members if m not in memo.members]
    left = {m.key for m in memo.members if m not in membership}
    remembered = memo.owners
    kept: dict[str, tuple[str, tuple[int, str] | None]] = {}
    wanted: dict[str, str | None] = {}
    for index, (monitor_id, monitor_type, regions, org_id) in enumerate(monitor_rows):
        if index % _HASHED_BETWEEN_LOOKS == 0 and cancelled.is_set():
            raise _PassCancelled
        if region not in regions or (owner_org is not None and org_id != owner_org):
            continue
        needed = CAPABILITY_FOR_TYPE.get(monitor_type)
        known = remembered.get(monitor_id)
        if known is not None and known[0] == monitor_type and (known[1] is None or known[1][1] not in left):
            best = _best(monitor_id, needed, joined, known[1])  # the winner stayed: only newcomers
        else:
            best = _best(monitor_id, needed, members)
        kept[monitor_id] = (monitor_type, best)
        wanted[monitor_id] = best[1] if best else None
    if full:
        _memos[region] = _OwnerMemo(membership, kept)
    elif region in _memos and not joined and not left:
        _memos[region] = _OwnerMemo(membership, {**remembered, **kept})
    return wanted


async def _owners_off_the_loop(
    region: str,
    monitor_rows: Sequence[Any],
    members: Sequence[Member],
    owner_org: str | None,
    *,
    full: bool,
) -> dict[str, str | None]:
    """_owners in a thread. A thread cannot be cancelled, so a pass cancelled meanwhile (the
    coordinator stopping, a newer pass taking over) tells it to stop, rather than leaving it to
    hash the rest of the region for nobody, holding the GIL's share of the loop's time."""
    cancelled = threading.Event()
    try:
        return await asyncio.to_thread(
            functools.partial(_owners, region, monitor_rows, members, owner_org, cancelled, full=full)
        )
    except asyncio.CancelledError:
        cancelled.set()
        raise


def _names_region(region: str) -> ColumnElement[bool]:
    """Monitors whose regions (a JSON list) name `region`: its quoted name in the list's text, the
    same on SQLite and PostgreSQL. A region name is [a-z0-9-] only, so neither JSON nor LIKE escapes
    anything in it; the parsed list decides (SQLite's LIKE ignores case), this narrows what is read."""
    return cast(Monitor.regions, Text).like(f"%{json.dumps(region)}%")


async def reassign(
    session: AsyncSession, region: str, liveness: Liveness, *, monitor_ids: Collection[str] | None = None
) -> list[str]:
    """Bring the region's grants in line with its monitors and live members; commits.

    With `monitor_ids`, only those monitors are considered (a monitor was created or changed).
    Returns the ids of monitors whose grant changed.
    """
    await _lock_region(session, region)
    members = await live_members(session, region, liveness)
    owner_org = await _region_owner_org(session, region)
    monitor_query = select(Monitor.id, Monitor.type, Monitor.regions, Monitor.org_id).where(
        Monitor.is_active.is_(True), Monitor.type.not_in(PASSIVE_TYPES), _names_region(region)
    )
    grant_query = select(AssignmentGrant.monitor_id, AssignmentGrant.member_key, AssignmentGrant.epoch).where(
        AssignmentGrant.region == region, AssignmentGrant.revoked_at.is_(None)
    )
    if monitor_ids is None:
        monitor_rows = list((await session.execute(monitor_query)).all())
        grant_rows = list((await session.execute(grant_query)).all())
    else:
        monitor_rows, grant_rows = [], []
        for condition in among(session, Monitor.id, monitor_ids):
            monitor_rows += (await session.execute(monitor_query.where(condition))).all()
        for condition in among(session, AssignmentGrant.monitor_id, monitor_ids):
            grant_rows += (await session.execute(grant_query.where(condition))).all()
    # Monitors hashed against members (those the memo knows against newcomers only): seconds for a
    # large region afresh (~1 us a pair, 20 s for 100,000 monitors and 200 agents), so in a thread,
    # and the event loop goes on serving the agents' leases and the API meanwhile (the GIL passes
    # between them every few milliseconds).
    wanted = await _owners_off_the_loop(region, monitor_rows, members, owner_org, full=monitor_ids is None)
    current = {monitor_id: (member, epoch) for monitor_id, member, epoch in grant_rows}

    changed = sorted(
        m for m in wanted.keys() | current.keys() if wanted.get(m) != current.get(m, (None, 0))[0]
    )
    # A changed monitor may keep its owner and still need its new settings pushed.
    touched = set(changed) if monitor_ids is None else set(monitor_ids) & (wanted.keys() | current.keys())
    if not changed:
        await _announce(session, region, touched, whole_region=False)
        await session.commit()
        _log_pass(region, monitor_ids, len(monitor_rows), len(members), 0)
        return []
    now = liveness.now
    for condition in among(session, AssignmentGrant.monitor_id, [m for m in changed if m in current]):
        await session.execute(
            update(AssignmentGrant)
            .where(AssignmentGrant.region == region, condition, AssignmentGrant.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    granted = {m: owner for m in changed if (owner := wanted.get(m)) is not None}
    last_epochs: dict[str, int] = {}
    for condition in among(session, AssignmentGrant.monitor_id, list(granted)):
        last_epochs.update(
            (
                await session.execute(
                    select(AssignmentGrant.monitor_id, func.max(AssignmentGrant.epoch))
                    .where(AssignmentGrant.region == region, condition)
                    .group_by(AssignmentGrant.monitor_id)
                )
            ).all()
        )
    if granted:
        await _insert_grants(
            session,
            [
                (monitor_id, region, int(last_epochs.get(monitor_id) or 0) + 1, owner, now)
                for monitor_id, owner in granted.items()
            ],
        )
    await _announce(session, region, touched | set(changed), whole_region=monitor_ids is None)
    await session.commit()
    ASSIGNMENT_CHANGES.labels(region).inc(len(changed))
    _log_pass(region, monitor_ids, len(monitor_rows), len(members), len(changed))
    return changed


_GRANT_COLUMNS = ("monitor_id", "region", "epoch", "member_key", "granted_at")
_COPY_GRANTS = f"COPY assignment_grants ({', '.join(_GRANT_COLUMNS)}) FROM STDIN"


async def _insert_grants(session: AsyncSession, rows: Sequence[tuple[str, str, int, str, datetime]]) -> None:
    """New grants (monitor_id, region, epoch, member_key, granted_at), in the session's transaction.

    A region's first agents are granted every monitor at once: on PostgreSQL a COPY (an
    executemany of 10,000 grants held the event loop for seconds, and the agents' lease renewals
    with it); elsewhere Core rows, not ORM objects."""
    if session.get_bind().dialect.name != "postgresql":
        values = [dict(zip(_GRANT_COLUMNS, row, strict=True)) for row in rows]
        await session.execute(insert(AssignmentGrant), values)
        return
    async with (await psycopg_connection(session)).cursor() as cursor:
        await copy_rows(cursor, _COPY_GRANTS, rows)


def _log_pass(
    region: str, monitor_ids: Collection[str] | None, read: int, members: int, changed: int
) -> None:
    """One line a pass: what it read says what it cost (each monitor read is hashed per member)."""
    log.log(
        logging.INFO if changed else logging.DEBUG,
        "region %s: %s pass read %d monitors, %d live agents, %d monitors changed owner",
        region,
        "full" if monitor_ids is None else "monitors'",
        read,
        members,
        changed,
    )
