"""Keeps grants current: monitors assigned as they change, regions rebalanced as membership changes.

Every replica runs one coordinator. Monitor changes (from the API, here or on another replica via
LISTEN) and membership changes (registrations, lapsed leases) trigger `reassign`, which is
serialized per region in the database and idempotent, so replicas doing the same work agree. What
open streams are told of the grants is the mailboxes' business (the assigner announces them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from control_plane.agents.assigner import Liveness, live_members, reassign
from control_plane.agents.assignment_reads import agent_regions, regions_of
from control_plane.agents.clock import SYSTEM_CLOCK, Clock
from control_plane.agents.registry import expire_lapsed
from control_plane.db import Database, UnavailableLog, brief_error, database_busy
from control_plane.settings import Settings

log = logging.getLogger(__name__)

# The longest reconnect backoff of traxo-agent (its --reconnect-max default): how long after this
# process starts an agent that was connected before may still be on its way back.
RECONNECT_ALLOWANCE = timedelta(seconds=30)


class AgentCoordinator:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock = SYSTEM_CLOCK,
        *,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        """`announce(monitor_id)` tells every open stream to look at a changed monitor again."""
        self.db = db
        self.settings = settings
        self.clock = clock
        self.started_at = clock.wall()
        self.lease = timedelta(seconds=settings.agent_lease_seconds)
        self._announce = announce
        self._outage = UnavailableLog()  # passes retried during an outage: a line per window
        self._changed_monitors: set[str] = set()
        # region -> (live member keys, monotonic time) of its last full reassignment
        self._full_passes: dict[str, tuple[frozenset[str], float]] = {}
        # Each region's latest rebalance task, and the regions asked for again while it runs.
        self._rebalancing: dict[str, asyncio.Task[None]] = {}
        self._rebalance_again: set[str] = set()
        self._last_join: dict[str, float] = {}  # region -> the loop's time of its latest request
        self._monitor_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        # One reassignment per region at a time in this process: a registration and the liveness
        # pass computing the same grants concurrently would both try to open the same epoch. (Across
        # replicas, PostgreSQL's advisory lock in `reassign` does the same.)
        self._region_locks: dict[str, asyncio.Lock] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._monitor_changes_loop(), name="traxo-assign-monitors"),
            asyncio.create_task(self._liveness_loop(), name="traxo-agent-liveness"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        self._tasks.clear()

    def liveness(self) -> Liveness:
        # Agents that were connected when this process started need their reconnect backoff to
        # find it again, on top of the missed periods anyone gets.
        grace = self.lease * self.settings.agent_lease_missed_periods + RECONNECT_ALLOWANCE
        return Liveness(
            self.clock.wall(),
            self.lease,
            self.settings.agent_lease_missed_periods,
            self.started_at,
            self.started_at + grace,
        )

    def _outage_noted(self, what: str, exc: BaseException) -> bool:
        """Whether `what` failed for the database's being unavailable (logged once a window if so).

        While it is away no renewal is written either: once it is back, every lease looks older
        than its missed periods, and the first pass would lapse every agent at once and move all
        their monitors. So each such failure restarts the grace a restarted control plane gives
        (liveness()): agents last renewed before it are judged only once they have had their
        missed periods, plus a reconnect, to renew again.

        Not for a busy database (the pool's checkout timing out, SQLite's file locked past its
        busy timeout): renewals still get through then, and a grace restarted on every such
        failure would spare a dead agent, and leave its monitors unchecked, for as long as the
        load lasts."""
        if not self._outage.outage_noted(what, exc):
            return False
        if not database_busy(exc):
            self.started_at = max(self.started_at, self.clock.wall())
        return True

    # -- reassignment --------------------------------------------------------------------------
    async def reassign_region(self, region: str, monitor_ids: Iterable[str] | None = None) -> list[str]:
        lock = self._region_locks.setdefault(region, asyncio.Lock())
        async with lock:
            liveness = self.liveness()
            if monitor_ids is not None:
                async with self.db.session() as session:
                    return await reassign(session, region, liveness, monitor_ids=list(monitor_ids))
            # A full pass is recorded with the membership it ran for: the liveness pass need not
            # repeat it (read first: a change after it makes the liveness pass run again, never less).
            async with self.db.session() as session:
                members = frozenset(m.key for m in await live_members(session, region, liveness))
            started = self.clock.monotonic()
            async with self.db.session() as session:
                changed = await reassign(session, region, liveness)
            self._full_passes[region] = (members, started)
            return changed

    def reassign_soon(self, region: str) -> None:
        """Rebalance a region in the background (a registration must not wait for it).

        Requests coalesce: while a region's rebalance is waiting or running, another request only
        asks for one more pass after it (the running one may have read the membership before the
        new agent's registration). A full pass costs every monitor of the region times its agents,
        so 200 agents joining at once make two passes, not 200 (minutes of CPU on a large region).
        A pass waits for the join window first: agents starting a few at a time make one pass too.
        """
        self._last_join[region] = asyncio.get_running_loop().time()
        if self.rebalance_pending(region):
            self._rebalance_again.add(region)
            return

        async def run() -> None:
            while True:
                await self._join_window(region)
                self._rebalance_again.discard(region)
                try:
                    await self.reassign_region(region)
                except Exception as exc:
                    if not self._outage_noted(f"rebalancing {region}", exc):
                        log.error(
                            "rebalancing %s failed; the liveness pass will retry: %s",
                            region,
                            brief_error(exc),
                        )
                # Done as soon as this returns: a request from then on starts a new task.
                if region not in self._rebalance_again:
                    return

        task = asyncio.create_task(run(), name=f"traxo-reassign-{region}")
        self._rebalancing[region] = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def rebalance_pending(self, region: str) -> bool:
        """A registration's rebalance of the region is waiting for its join window or running."""
        pending = self._rebalancing.get(region)
        return pending is not None and not pending.done()

    async def _join_window(self, region: str) -> None:
        """Until no agent joined the region for a window, or five windows have passed.

        The loop's clock, not `self.clock`: this is about when calls really arrive."""
        window = self.settings.agent_join_window_seconds
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + 5 * window
        while True:
            wait = min(self._last_join[region] + window, give_up_at) - loop.time()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def settle(self) -> None:
        """Wait for background rebalancing to finish (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def reassign_monitors(self, monitor_ids: set[str]) -> None:
        """Reassign changed monitors in every region they are in or were granted in."""
        async with self.db.session() as session:
            regions = await regions_of(session, monitor_ids)
        for region in sorted(regions):
            await self.reassign_region(region, monitor_ids)
        if self._announce is not None:
            for monitor_id in monitor_ids:  # a deleted monitor has no grants left to announce it
                self._announce(monitor_id)

    def on_monitor_changed(self, monitor_id: str) -> None:
        """A monitor was created, changed or deleted (here or on another replica)."""
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
                if not self._outage_noted(f"assigning {len(batch)} changed monitors", exc):
                    log.error(
                        "assigning %d changed monitors failed; the liveness pass will retry: %s",
                        len(batch),
                        brief_error(exc),
                    )

    # -- liveness ------------------------------------------------------------------------------
    async def check_liveness(self) -> None:
        """Judge leases (outside the grace period) and rebalance every region."""
        liveness = self.liveness()
        async with self.db.session() as session:
            regions = await agent_regions(session, self.settings.regions)
        for region in regions:
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
            now = self.clock.monotonic()
            if lapsed == 0 and self.rebalance_pending(region):
                continue  # a registration's pass is on its way, with the members that joined
            if last is None or last[0] != members or now - last[1] >= self.settings.agent_full_pass_seconds:
                await self.reassign_region(region)

    async def liveness_pass(self) -> None:
        """check_liveness as the loop runs it: a failure is logged (one bounded line, or the
        outage's window line) and left to the next pass."""
        try:
            await self.check_liveness()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._outage_noted("the agents' liveness pass", exc):
                log.error("agent liveness pass failed: %s", brief_error(exc))

    async def _liveness_loop(self) -> None:
        while True:  # every half lease
            await self.liveness_pass()
            await asyncio.sleep(max(0.2, self.lease.total_seconds() / 2))
