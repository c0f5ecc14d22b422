"""Change notifications: services announce what changed, caches and agent streams react.

A service calls `publish(session, topic, payload)` inside its transaction. After that transaction
commits, subscribers in this process hear it at once; on PostgreSQL a NOTIFY sent in the same
transaction tells every other replica too (LISTEN), so no replica acts on stale state for long.
Publishing writes none of the session's pending rows: they go when the service flushes or commits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "traxo_changes"
_PENDING = "traxo.pending_changes"
_FEED = "traxo.change_feed"

Subscriber = Callable[[str], None]


class ChangeFeed:
    def __init__(self, database_url: str) -> None:
        self._is_postgres = database_url.startswith("postgresql")
        self._dsn = (
            make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
            if self._is_postgres
            else ""
        )
        self._subscribers: dict[str, list[Subscriber]] = defaultdict(list)
        self._reset_subscribers: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        if not self._is_postgres:
            self._connected.set()  # one process owns a SQLite file: local delivery is complete

    @property
    def complete(self) -> bool:
        """True while every change, from any replica, is being delivered here."""
        return self._connected.is_set()

    def session_info(self) -> dict[str, Any]:
        return {_FEED: self}

    def subscribe(self, topic: str, callback: Subscriber) -> None:
        self._subscribers[topic].append(callback)

    def on_reset(self, callback: Callable[[], None]) -> None:
        """Called when deliveries may have been missed (the listener reconnected)."""
        self._reset_subscribers.append(callback)

    def unsubscribe(self, topic: str, callback: Subscriber) -> None:
        callbacks = self._subscribers.get(topic, [])
        if callback in callbacks:
            callbacks.remove(callback)

    async def _publish(self, session: AsyncSession, topic: str, payload: str) -> None:
        session.info.setdefault(_PENDING, []).append((topic, payload))
        if self._is_postgres:
            # The NOTIFY needs none of the session's pending rows. Autoflushing them here would
            # raise their unique violations from publish(), outside the IntegrityError handler the
            # caller keeps around its flush or commit (two concurrent invites: a 500, not a 409).
            with session.no_autoflush:
                await session.execute(
                    text("SELECT pg_notify(:channel, :message)"),
                    {"channel": CHANNEL, "message": f"{topic}:{payload}"},
                )

    def dispatch(self, topic: str, payload: str) -> None:
        for callback in self._subscribers.get(topic, ()):
            try:
                callback(payload)
            except Exception:
                log.exception("change subscriber for %s failed", topic)

    async def start(self) -> None:
        if self._is_postgres and self._task is None:
            self._task = asyncio.create_task(self._listen(), name="traxo-change-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._reset()
                    self._connected.set()
                    delay = 0.5
                    async for notification in conn.notifies():
                        topic, _, payload = notification.payload.partition(":")
                        self.dispatch(topic, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change listener lost its connection (%s); retrying in %.1f s", exc, delay)
            self._connected.clear()
            self._reset()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    def _reset(self) -> None:
        for callback in self._reset_subscribers:
            callback()


async def publish(session: AsyncSession, topic: str, payload: str = "") -> None:
    """Announce a change made in this session's transaction; it is delivered if and when it commits."""
    feed = session.info.get(_FEED)
    if not isinstance(feed, ChangeFeed):
        raise RuntimeError("session was not made by control_plane.db.Database; its changes would go unheard")
    await feed._publish(session, topic, payload)


@event.listens_for(Session, "after_commit")
def _deliver_after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    feed = session.info.get(_FEED)
    if pending and isinstance(feed, ChangeFeed):
        for topic, payload in pending:
            feed.dispatch(topic, payload)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
