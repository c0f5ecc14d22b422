"""Agents' leases kept alive: renewals gathered in memory and written together.

An agent calls RenewLease about three times a lease period, and every batch of results it sends
shows it alive as well. Written one at a time, 200 agents made 60 transactions a second, each
waiting for a pool connection behind the results being stored; a busy process answered them late,
leases lapsed, their monitors moved, and the moves made it busier still. Here a renewal waits for the
next flush (a tenth of a second), which writes every renewal gathered meanwhile in one transaction,
a statement per agent token; and an agent whose results arrive is renewed without a call of its own,
at most once a third of a lease, so a renewal that reached the process late (or not at all: gRPC
cancels a call it could not hand to the process within 30 s) costs no agent its lease while its
results flow.

Lapsed is final in both ways: a lapsed agent is renewed by neither, and must register again:
RenewLease says so, and so does its results stream, ended with FAILED_PRECONDITION (an agent told
at registration that its results renew its lease calls RenewLease only while none are acknowledged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.agents.clock import Clock
from control_plane.agents.registry import Registration
from control_plane.core.id_sets import among
from control_plane.db import Database, UnavailableLog, brief_error
from control_plane.models import Agent

log = logging.getLogger(__name__)


async def renew_agents(
    session: AsyncSession, token_id: str, agent_ids: Collection[str], *, now: datetime
) -> set[str]:
    """Renew the token's agents among `agent_ids` that still hold their lease; the ids renewed.
    Not committed here."""
    renewed: set[str] = set()
    for condition in among(session, Agent.id, agent_ids):
        renewed.update(
            await session.scalars(
                update(Agent)
                .where(Agent.token_id == token_id, condition, Agent.lapsed_at.is_(None))
                .values(renewed_at=now)
                .returning(Agent.id)
            )
        )
    return renewed


Calls = dict[str, dict[str, list[asyncio.Future[bool]]]]  # token -> agent -> RenewLease calls waiting


def _calls(waiting: Calls) -> Iterator[tuple[str, str, asyncio.Future[bool]]]:
    for token_id, calls in waiting.items():
        for agent_id, futures in calls.items():
            for future in futures:
                yield token_id, agent_id, future


class LeaseRenewals:
    def __init__(self, db: Database, clock: Clock, *, lease: timedelta, gather_seconds: float = 0.1) -> None:
        self._db = db
        self._clock = clock
        self._gather = gather_seconds
        # Results renew an agent at most this often (its own calls are always written).
        self._heard_every = lease.total_seconds() / 3
        self._waiting: Calls = {}
        self._heard: dict[str, set[str]] = {}  # token -> agents whose results arrived
        self._renewed_at: dict[str, float] = {}  # agent -> monotonic time of its last written renewal
        # Agents whose results arrived after their lease lapsed: their results stream is ended, so
        # that they register again (an agent renewed by its results may never call RenewLease).
        self._lapsed: set[str] = set()
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._outage = UnavailableLog()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="traxo-lease-renewals")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for _, _, future in _calls(self._waiting):  # the server has stopped: nobody waits for these
            future.cancel()
        self._waiting.clear()

    async def renew(self, token_id: str, agent_id: str) -> bool:
        """True when the agent still holds its lease (renewed now), False when it lapsed or is not
        this token's; raises what the write raised (a database outage, say)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(token_id, {}).setdefault(agent_id, []).append(future)
        self._wake.set()
        return await future

    def lapsed(self, agent_id: str) -> bool:
        """The agent's results arrived after its lease lapsed (until it registers again)."""
        return agent_id in self._lapsed

    def registered(self, agent_id: str) -> None:
        self._lapsed.discard(agent_id)
        self._renewed_at.pop(agent_id, None)

    @property
    def heard_every(self) -> float:
        """Seconds between two renewals an agent's results make (a third of a lease)."""
        return self._heard_every

    def heard(self, sender: Registration) -> None:
        """The agent's results arrived: its lease is renewed with a coming flush."""
        last = self._renewed_at.get(sender.agent_id)
        if last is not None and self._clock.monotonic() - last < self._heard_every:
            return
        self._heard.setdefault(sender.token_id, set()).add(sender.agent_id)
        self._wake.set()

    async def flush(self) -> None:
        async with self._flushing:
            waiting, self._waiting = self._waiting, {}
            heard, self._heard = self._heard, {}
            agents = {
                token: set(waiting.get(token, ())) | heard.get(token, set())
                for token in waiting.keys() | heard.keys()
            }
            if not agents:
                return
            started = self._clock.monotonic()
            try:
                renewed: dict[str, set[str]] = {}  # token -> its agents renewed
                async with self._db.session() as session:
                    now = self._clock.wall()
                    for token_id, agent_ids in sorted(agents.items()):
                        renewed[token_id] = await renew_agents(session, token_id, agent_ids, now=now)
                    await session.commit()
            except BaseException as exc:
                # The calls fail as the write did (an outage: UNAVAILABLE, and the agents retry);
                # agents heard from are heard again with their next batch.
                for _, _, future in _calls(waiting):
                    if not future.done():
                        future.set_exception(exc)
                raise
            for token_id, agent_ids in renewed.items():
                for agent_id in agent_ids:
                    self._renewed_at[agent_id] = started
                self._lapsed.update(heard.get(token_id, set()) - agent_ids)
            for token_id, agent_id, future in _calls(waiting):
                if not future.done():  # a call the agent gave up on is cancelled
                    future.set_result(agent_id in renewed[token_id])
            stale = started - 10 * self._heard_every  # agents gone for good are forgotten
            for agent_id in [a for a, at in self._renewed_at.items() if at < stale]:
                del self._renewed_at[agent_id]

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._gather)
            try:
                await self.flush()
            except Exception as exc:
                if not self._outage.outage_noted("renewing agents' leases", exc):
                    log.error("renewing agents' leases failed; the agents retry: %s", brief_error(exc))
