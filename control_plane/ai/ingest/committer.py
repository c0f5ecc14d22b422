"""The AI ingest's group commit: requests' events queue up, a writer stores everything pending in
one transaction and answers each request after that commit (a 200 is a committed event).

While one group commits the next accumulates, so a busier ingest writes bigger groups, not more
transactions. In the group's transaction (store.py): its monitors with their plans (on
PostgreSQL held FOR KEY SHARE: a deletion waits), each organization's daily counter (locked), the
events already stored under a retried eventId, the new events, their hourly rollups (summed in
Python first: each row is touched once per group), the counters' additions.

Admission is bounded (ai_ingest_max_pending_events): events taken and not yet answered, queued or
in a group being written. A request that would pass the bound is refused before it is queued
(Overloaded, a 503 with Retry-After), so a load above what the database commits sheds at once
instead of growing the queue, and the process's memory, until clients time out.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.ai.events import AiEventIn
from control_plane.ai.ingest.store import (
    AiIngestStore,
    EventRow,
    GroupWrites,
    MonitorRow,
    RollupDelta,
    RollupKey,
    ingest_store,
)
from control_plane.ai.pricing import PRICE_VERSION, cost_usd
from control_plane.core.errors import DomainError, InvalidInput, NotFound
from control_plane.core.ids import new_id
from control_plane.db import Database, UnavailableLog, brief_error
from control_plane.domain import histogram
from control_plane.domain.plans import limits_for
from control_plane.models import Monitor
from control_plane.observability.metrics import AI_EVENTS, AI_GROUP_FAILURES
from control_plane.settings import Settings

log = logging.getLogger(__name__)

_ATTEMPTS = 3  # a transient failure (deadlock, serialization, a racing eventId) is run again twice
# Transactions in flight at once on PostgreSQL: one commits while the next is written. SQLite has
# one writer whatever we do.
_POSTGRES_WRITERS = 2


@dataclass(frozen=True, slots=True)
class Accepted:
    id: str  # evt_... (for a retried eventId: the stored event's id)
    cost_usd: float | None  # None: unpriced model
    daily_events_used: int  # the organization's events today (UTC) after this one
    daily_events_limit: int  # its plan's limit


@dataclass(frozen=True, slots=True)
class OverLimit:
    error: str  # "Daily AI event limit reached: 1000 events per day on the FREE plan; ..."
    retry_after: int  # whole seconds to the next UTC midnight (>= 1)
    daily_events_used: int
    daily_events_limit: int


class IngestFailed(Exception):
    """The group's transaction failed (nothing of it was stored): the request may be sent again."""


class Overloaded(IngestFailed):
    """Refused before anything was queued: more events wait to be committed than the bound allows.
    (An IngestFailed: nothing was stored, and every caller that answers a failed write with a 503
    and Retry-After answers this one alike.)"""


Answer = Accepted | OverLimit


@dataclass(slots=True)
class _Request:
    monitor_id: str
    events: Sequence[AiEventIn]
    answer: asyncio.Future[list[Answer]]


@dataclass(slots=True)
class _Group:
    """What one transaction decided: each request's answers (or its error), and what to write."""

    answers: list[list[Answer] | DomainError] = field(default_factory=list)
    rows: list[EventRow] = field(default_factory=list)
    rollups: dict[RollupKey, RollupDelta] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)  # org_id -> events accepted


class AiIngest:
    """Stores LLM events by group commit (many requests' events per transaction)."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._outage = UnavailableLog()  # an outage's failed groups: a line per window, not each
        self._queue: deque[_Request] = deque()
        self._wake: asyncio.Event | None = None
        self._writers: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._store: AiIngestStore = ingest_store(db.engine.dialect.name)
        self._pending_events = 0  # taken by submit() and not yet answered: queued or being written

    @property
    def saturated(self) -> bool:
        """True while the bound is reached: callers may refuse a request before even parsing it."""
        return self._pending_events >= self._settings.ai_ingest_max_pending_events

    async def submit(self, monitor_id: str, events: Sequence[AiEventIn]) -> list[Accepted | OverLimit]:
        """Returns once the accepted events are COMMITTED (one answer per event, in order).
        Raises NotFound("Monitor not found") for an unknown id, InvalidInput("monitorId: ...")
        for a monitor that is not LLM type or is paused (is_active False) — saying which —
        before anything is written."""
        if self._closed:
            raise IngestFailed("The AI ingest is shutting down; send the events again")
        if not events:
            # Nothing to write (a batch of only invalid events, an OTLP export without GenAI
            # spans): the monitor is still checked, so a wrong id is a 404 whatever was sent.
            await self._check_monitor(monitor_id)
            return []
        bound = self._settings.ai_ingest_max_pending_events
        # A request larger than the bound is still taken when nothing waits, or it never would be.
        if self._pending_events and self._pending_events + len(events) > bound:
            raise Overloaded(f"The AI ingest has {self._pending_events} events waiting to be stored")
        wake = self._start()
        answer: asyncio.Future[list[Answer]] = asyncio.get_running_loop().create_future()
        self._pending_events += len(events)
        self._queue.append(_Request(monitor_id, events, answer))
        wake.set()
        return await answer

    async def _check_monitor(self, monitor_id: str) -> None:
        async with self._db.session() as session:
            row = (
                await session.execute(select(Monitor.type, Monitor.is_active).where(Monitor.id == monitor_id))
            ).first()
        monitor = MonitorRow(monitor_id, "", row[0], row[1], "") if row is not None else None
        refusal = _refusal(monitor_id, monitor)
        if refusal is not None:
            raise refusal

    async def close(self) -> None:
        """Write what is queued, then stop the writers."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        writers, self._writers = self._writers, []
        if writers:
            await asyncio.gather(*writers, return_exceptions=True)

    def _start(self) -> asyncio.Event:
        """The writers, started on the first event (in the running loop: tests and servers alike)."""
        loop = asyncio.get_running_loop()
        if self._wake is None or self._loop is not loop or any(w.done() for w in self._writers):
            self._loop = loop
            self._wake = asyncio.Event()
            count = 1 if self._db.is_sqlite else _POSTGRES_WRITERS
            # A context of their own: started inside the first event's request, they would log
            # every later group under that request's id (observability/logs.py REQUEST_ID).
            self._writers = [
                loop.create_task(self._write_loop(self._wake), context=contextvars.Context())
                for _ in range(count)
            ]
        return self._wake

    async def _write_loop(self, wake: asyncio.Event) -> None:
        while True:
            while not self._queue:
                if self._closed:
                    return
                wake.clear()
                await wake.wait()
            group = self._take()
            try:
                await self._write(group)
            except Exception as exc:
                AI_GROUP_FAILURES.inc()
                if not self._outage.outage_noted(f"an AI ingest group of {len(group)} requests", exc):
                    log.warning("AI ingest: a group of %d requests failed: %s", len(group), brief_error(exc))
                failure = IngestFailed("The events could not be stored; send them again")
                for request in group:
                    if not request.answer.done():
                        request.answer.set_exception(failure)
            finally:
                # Answered (or their clients gone): their room is free only now, after the commit.
                self._pending_events -= sum(len(request.events) for request in group)

    def _take(self) -> list[_Request]:
        """Everything queued, up to ai_commit_max_events (at least one request, however large)."""
        limit = self._settings.ai_commit_max_events
        group = [self._queue.popleft()]
        size = len(group[0].events)
        while self._queue and size + len(self._queue[0].events) <= limit:
            request = self._queue.popleft()
            size += len(request.events)
            group.append(request)
        return group

    async def _write(self, requests: list[_Request]) -> None:
        for attempt in range(_ATTEMPTS):
            async with self._db.sessions() as session:
                try:
                    group = await self._transaction(session, requests)  # committed
                    break
                except Exception as exc:
                    if attempt == _ATTEMPTS - 1 or not self._store.retries(exc):
                        raise
                    log.info("AI ingest: group run again after %s", brief_error(exc))
        AI_EVENTS.inc(len(group.rows))  # committed
        for request, answer in zip(requests, group.answers, strict=True):
            if request.answer.done():  # its client went away; the events are stored all the same
                continue
            if isinstance(answer, DomainError):
                request.answer.set_exception(answer)
            else:
                request.answer.set_result(answer)

    async def _transaction(self, session: AsyncSession, requests: list[_Request]) -> _Group:
        store = self._store
        now = self._clock().astimezone(UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        hour = now.replace(minute=0, second=0, microsecond=0)
        retry_after = max(1, int(((day + timedelta(days=1)) - now).total_seconds() + 0.999))
        monitors, used = await store.open_group(session, sorted({r.monitor_id for r in requests}), day)
        group = _Group()
        live: list[tuple[_Request, MonitorRow, list[Answer]]] = []
        for request in requests:
            problem = _refusal(request.monitor_id, monitors.get(request.monitor_id))
            if problem is None:
                out: list[Answer] = []
                live.append((request, monitors[request.monitor_id], out))
            group.answers.append(out if problem is None else problem)
        if not live:
            await session.rollback()
            return group
        keys = sorted(
            {(r.monitor_id, e.event_id) for r, _, _ in live for e in r.events if e.event_id is not None}
        )
        stored = await store.stored_events(session, keys)
        seen: dict[tuple[str, str], Answer] = {}
        for request, monitor, out in live:
            limit = limits_for(monitor.plan).ai_events_per_day
            for event in request.events:
                key = (monitor.id, event.event_id) if event.event_id is not None else None
                if key is not None and key in stored:
                    event_id, cost = stored[key]
                    out.append(Accepted(event_id, cost, used[monitor.org_id], limit))
                    continue
                if key is not None and key in seen:
                    first = seen[key]
                    if isinstance(first, Accepted):
                        first = Accepted(first.id, first.cost_usd, used[monitor.org_id], limit)
                    out.append(first)
                    continue
                if used[monitor.org_id] >= limit:
                    answer: Answer = OverLimit(
                        f"Daily AI event limit reached: {limit} events per day on the {monitor.plan} plan; "
                        f"the count starts again at 00:00 UTC, in {retry_after} s",
                        retry_after,
                        used[monitor.org_id],
                        limit,
                    )
                else:
                    used[monitor.org_id] += 1
                    group.added[monitor.org_id] = group.added.get(monitor.org_id, 0) + 1
                    answer = self._stored(group, monitor, event, now, hour, used[monitor.org_id], limit)
                out.append(answer)
                if key is not None:
                    seen[key] = answer
        await store.write_and_commit(session, GroupWrites(group.rows, now, group.rollups, day, group.added))
        return group

    def _stored(
        self,
        group: _Group,
        monitor: MonitorRow,
        event: AiEventIn,
        now: datetime,
        hour: datetime,
        used: int,
        limit: int,
    ) -> Accepted:
        cost = cost_usd(
            event.provider,
            event.model,
            now,
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
            cached_tokens=event.cached_tokens,
        )
        event_id = new_id("evt")
        status = event.status
        group.rows.append(
            (
                event_id, monitor.org_id, monitor.id, event.event_id, event.provider, event.model,
                event.prompt_tokens, event.completion_tokens, event.tokens, event.cached_tokens,
                event.reasoning_tokens, cost, PRICE_VERSION, event.latency_ms, event.status_code, status,
                event.error, event.prompt_hash, event.metadata, event.rag_docs_retrieved,
                event.rag_avg_relevance, event.rag_retrieval_ms, event.rag_context_tokens, event.source,
            )
        )  # fmt: skip
        key = (monitor.id, hour, event.provider, event.model)
        delta = group.rollups.get(key)
        if delta is None:
            delta = group.rollups[key] = RollupDelta(org_id=monitor.org_id)
        _add(delta, event, cost, status == "error")
        return Accepted(event_id, cost, used, limit)


def _refusal(monitor_id: str, monitor: MonitorRow | None) -> DomainError | None:
    if monitor is None:
        return NotFound("Monitor not found")
    if monitor.type != "LLM":
        return InvalidInput(
            f"monitorId: monitor {monitor_id} is a {monitor.type} monitor; AI events go to LLM monitors"
        )
    if not monitor.is_active:
        return InvalidInput(f"monitorId: monitor {monitor_id} is paused; resume it to ingest AI events")
    return None


def _add(delta: RollupDelta, event: AiEventIn, cost: float | None, failed: bool) -> None:
    delta.events += 1
    delta.errors += failed
    delta.input_tokens += event.prompt_tokens
    delta.output_tokens += event.completion_tokens
    delta.total_tokens += event.tokens
    delta.cached_tokens += event.cached_tokens or 0
    delta.reasoning_tokens += event.reasoning_tokens or 0
    if cost is None:
        delta.unpriced_events += 1
    else:
        delta.cost_usd += cost
    delta.latency_sum_ms += event.latency_ms
    histogram.add(delta.latency_histogram, event.latency_ms)
    rag: Any = False
    if event.rag_docs_retrieved is not None:
        delta.rag_docs_events += 1
        delta.rag_docs_sum += event.rag_docs_retrieved
        rag = True
    if event.rag_avg_relevance is not None:
        delta.rag_relevance_events += 1
        delta.rag_relevance_sum += event.rag_avg_relevance
        rag = True
    if event.rag_retrieval_ms is not None:
        delta.rag_retrieval_events += 1
        delta.rag_retrieval_ms_sum += event.rag_retrieval_ms
        rag = True
    if event.rag_context_tokens is not None:
        delta.rag_context_events += 1
        delta.rag_context_tokens_sum += event.rag_context_tokens
        rag = True
    delta.rag_events += rag
