"""Keeps grants current and tells open assignment streams what changed.

Every replica runs one coordinator. Monitor changes (from the API, here or on another replica via
LISTEN) and membership changes (registrations, lapsed leases) trigger `reassign`, which is
serialized per region in the database and idempotent, so replicas doing the same work agree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import select

from control_plane.agents.assigner import ASSIGNMENTS_TOPIC, Liveness, live_members, reassign
from control_plane.agents.convert import MonitorAssignment
from control_plane.agents.id_sets import among
from control_plane.agents.mailboxes import ALL, StreamMailbox, VersionClock
from control_plane.agents.registry import AGENTS_TOPIC, Registration, expire_lapsed
from control_plane.agents.tokens import TOKENS_TOPIC
from control_plane.db import Database, brief_error
from control_plane.models import AgentToken, AssignmentGrant, Monitor
from control_plane.results import LastCheckWriter
from control_plane.services.monitors import MONITORS_TOPIC
from control_plane.settings import Settings
from control_plane.core.timefmt import Clock, utcnow

log = logging.getLogger(__name__)

# The longest reconnect backoff of traxo-agent (its --reconnect-max default): how long after this
# process starts an agent that was connected before may still be on its way back.
RECONNECT_ALLOWANCE = timedelta(seconds=30)


class AgentCoordinator:
    def __init__(self, db: Database, settings: Settings, clock: Clock = utcnow) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.started_at = clock()
        self.versions = VersionClock()
        self.lease = timedelta(seconds=settings.agent_lease_seconds)
        self._mailboxes: set[StreamMailbox] = set()
        # member key -> (version, assignments) the member's last stream here ended with.
        self._resume: OrderedDict[str, tuple[int, dict[str, MonitorAssignment]]] = OrderedDict()
        self._changed_monitors: set[str] = set()
        # region -> (live member keys, monotonic time) of its last full reassignment
        self._full_passes: dict[str, tuple[frozenset[str], float]] = {}
        self._monitor_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        # Token ids revoked while this process was listening: open results streams check it per batch.
        self.revoked_tokens: set[str] = set()
        # agent id -> its newest incarnation heard of: results streams of older ones end.
        self._incarnations: dict[str, int] = {}
        # One reassignment per region at a time in this process: a registration and the liveness
        # pass computing the same grants concurrently would both try to open the same epoch. (Across
        # replicas, PostgreSQL's advisory lock in `reassign` does the same.)
        self._region_locks: dict[str, asyncio.Lock] = {}
        # Agents' results update their monitors' lastCheck through this, behind the acknowledgement.
        self.last_checks = LastCheckWriter(db)
        db.changes.subscribe(MONITORS_TOPIC, self._on_monitor_changed)
        db.changes.subscribe(ASSIGNMENTS_TOPIC, self._on_assignments_changed)
        db.changes.subscribe(TOKENS_TOPIC, self._on_token_revoked)
        db.changes.subscribe(AGENTS_TOPIC, self._on_agent_registered)
        db.changes.on_reset(lambda: self._post_all(ALL))

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.last_checks.start()
        self._tasks = [
            asyncio.create_task(self._monitor_changes_loop(), name="traxo-assign-monitors"),
            asyncio.create_task(self._liveness_loop(), name="traxo-agent-liveness"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        self._tasks.clear()
        try:
            await self.last_checks.stop()
        except Exception as exc:
            log.error("writing the last lastCheck updates failed: %s", brief_error(exc))

    def liveness(self) -> Liveness:
        # Agents that were connected when this process started need their reconnect backoff to
        # find it again, on top of the missed periods anyone gets.
        grace = self.lease * self.settings.agent_lease_missed_periods + RECONNECT_ALLOWANCE
        return Liveness(
            self.clock(),
            self.lease,
            self.settings.agent_lease_missed_periods,
            self.started_at,
            self.started_at + grace,
        )

    # -- streams -----------------------------------------------------------------------------
    def open_mailbox(self, registration: Registration) -> StreamMailbox:
        mailbox = StreamMailbox(registration)
        self._mailboxes.add(mailbox)
        return mailbox

    def close_mailbox(self, mailbox: StreamMailbox, version: int, sent: dict[str, MonitorAssignment]) -> None:
        self._mailboxes.discard(mailbox)
        self._resume[mailbox.member_key] = (version, sent)
        self._resume.move_to_end(mailbox.member_key)
        while len(self._resume) > 10_000:
            self._resume.popitem(last=False)

    def resume_state(self, member_key: str, known_version: int) -> dict[str, MonitorAssignment] | None:
        cached = self._resume.get(member_key)
        if known_version and cached and cached[0] == known_version:
            return dict(cached[1])
        return None

    async def load_assignments(
        self, member_key: str, region: str, monitor_ids: Iterable[str] | None = None
    ) -> dict[str, MonitorAssignment]:
        query = (
            select(
                Monitor.id,
                Monitor.type,
                Monitor.url,
                Monitor.interval,
                Monitor.timeout,
                Monitor.method,
                Monitor.expected_status,
                Monitor.expected_keyword,
                Monitor.config,
                AssignmentGrant.epoch,
            )
            .join(AssignmentGrant, AssignmentGrant.monitor_id == Monitor.id)
            .where(
                AssignmentGrant.member_key == member_key,
                AssignmentGrant.region == region,
                AssignmentGrant.revoked_at.is_(None),
                Monitor.is_active.is_(True),
            )
        )
        async with self.db.session() as session:
            if monitor_ids is None:
                rows = list((await session.execute(query)).all())
            else:
                rows = []
                for condition in among(session, Monitor.id, set(monitor_ids)):
                    rows += (await session.execute(query.where(condition))).all()
        return {
            row.id: MonitorAssignment(
                monitor_id=row.id,
                type=row.type,
                target=row.url or "",
                interval=row.interval,
                timeout=row.timeout,
                method=row.method,
                expected_status=row.expected_status,
                expected_keyword=row.expected_keyword,
                config=row.config or {},
                epoch=row.epoch,
            )
            for row in rows
        }

    # -- reassignment --------------------------------------------------------------------------
    async def regions(self) -> list[str]:
        async with self.db.session() as session:
            token_regions = await session.scalars(
                select(AgentToken.region).where(AgentToken.revoked_at.is_(None)).distinct()
            )
            return sorted(set(self.settings.regions) | set(token_regions))

    async def reassign_region(self, region: str, monitor_ids: Iterable[str] | None = None) -> list[str]:
        lock = self._region_locks.setdefault(region, asyncio.Lock())
        async with lock, self.db.session() as session:
            return await reassign(
                session,
                region,
                self.liveness(),
                monitor_ids=None if monitor_ids is None else list(monitor_ids),
            )

    def reassign_soon(self, region: str) -> None:
        """Rebalance a region in the background (a registration must not wait for it)."""

        async def run() -> None:
            try:
                await self.reassign_region(region)
            except Exception as exc:
                log.error("rebalancing %s failed; the liveness pass will retry: %s", region, brief_error(exc))

        task = asyncio.create_task(run(), name=f"traxo-reassign-{region}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for background rebalancing to finish (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def check_liveness(self) -> None:
        """Judge leases (outside the grace period) and rebalance every region."""
        liveness = self.liveness()
        for region in await self.regions():
            async with self.db.session() as session:
                lapsed = await expire_lapsed(
                    session,
                    region,
                    cutoff=liveness.cutoff,
                    now=liveness.now,
                    spared_before=liveness.spared_before,
                )
            if lapsed:
                log.warning("region %s: %d agents stopped renewing their lease", region, lapsed)
            async with self.db.session() as session:
                members = frozenset(m.key for m in await live_members(session, region, liveness))
            # A full pass reads every monitor: do it when membership changed, else now and then
            # as a safety net (monitor changes are assigned as they happen).
            last = self._full_passes.get(region)
            now = time.monotonic()
            if last is None or last[0] != members or now - last[1] >= self.settings.agent_full_pass_seconds:
                await self.reassign_region(region)
                self._full_passes[region] = (members, now)

    async def _liveness_loop(self) -> None:
        while True:
            try:
                await self.check_liveness()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # retried every half lease: one bounded line each time
                log.error("agent liveness pass failed: %s", brief_error(exc))
            await asyncio.sleep(max(0.2, self.lease.total_seconds() / 2))

    def _on_monitor_changed(self, monitor_id: str) -> None:
        self._changed_monitors.add(monitor_id)
        self._monitor_wake.set()

    async def _monitor_changes_loop(self) -> None:
        while True:
            await self._monitor_wake.wait()
            self._monitor_wake.clear()
            batch, self._changed_monitors = self._changed_monitors, set()
            try:
                await self.reassign_monitors(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error(
                    "assigning %d changed monitors failed; the liveness pass will retry: %s",
                    len(batch),
                    brief_error(exc),
                )

    async def reassign_monitors(self, monitor_ids: set[str]) -> None:
        """Reassign changed monitors in every region they are in or were granted in."""
        regions: set[str] = set()
        async with self.db.session() as session:
            for condition in among(session, Monitor.id, monitor_ids):
                for monitor_regions in await session.scalars(select(Monitor.regions).where(condition)):
                    regions.update(monitor_regions)
            for condition in among(session, AssignmentGrant.monitor_id, monitor_ids):
                regions.update(
                    await session.scalars(
                        select(AssignmentGrant.region)
                        .where(condition, AssignmentGrant.revoked_at.is_(None))
                        .distinct()
                    )
                )
        for region in sorted(regions):
            await self.reassign_region(region, monitor_ids)
        for monitor_id in monitor_ids:  # a deleted monitor has no grants left to announce it
            self._post_all(monitor_id)

    def _on_assignments_changed(self, payload: str) -> None:
        region, _, monitor_id = payload.partition(":")
        for mailbox in list(self._mailboxes):
            if mailbox.region == region:
                mailbox.post(monitor_id or ALL)

    def _post_all(self, monitor_id: str) -> None:
        for mailbox in list(self._mailboxes):
            mailbox.post(monitor_id)

    def superseded(self, registration: Registration) -> bool:
        """True once a newer registration of the same agent is known here."""
        return self._incarnations.get(registration.agent_id, 0) > registration.incarnation

    def _on_agent_registered(self, payload: str) -> None:
        agent_id, _, incarnation_text = payload.rpartition(":")
        incarnation = int(incarnation_text)
        if incarnation <= self._incarnations.get(agent_id, 0):
            return
        self._incarnations[agent_id] = incarnation
        for mailbox in list(self._mailboxes):
            registration = mailbox.registration
            if registration.agent_id == agent_id and registration.incarnation < incarnation:
                # Usually the stream of a process that is gone (its connection not yet timed out);
                # if it is alive, two processes share this token and agent name.
                log.warning(
                    "agent %s registered again (incarnation %d): ending the stream of incarnation %d;"
                    " if both processes are running, give each its own --name",
                    agent_id,
                    incarnation,
                    registration.incarnation,
                )
                mailbox.superseded = True
                mailbox.wake.set()

    def _on_token_revoked(self, token_id: str) -> None:
        self.revoked_tokens.add(token_id)
        for mailbox in list(self._mailboxes):
            if mailbox.token_id == token_id:
                mailbox.revoked = True
                mailbox.wake.set()
