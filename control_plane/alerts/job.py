"""The alerts job: fan-out (held incidents and reminders included), then delivery, in a loop that
runs a pass every `alert_delivery_seconds` and at once when woken (`wake()`: the heartbeat and
incident sweeps call it after writing results, and the `incident_events` change topic does, so a
replica that hears of new events does not wait for its next tick). It runs on every replica:
claims are SKIP LOCKED, the rest compare-and-set."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from control_plane.alerts.guard import outbound_session
from control_plane.alerts.notification import Sender
from control_plane.alerts.outbox import dispatch_events, release_held
from control_plane.alerts.reminders import remind
from control_plane.alerts.senders import SENDERS
from control_plane.alerts.worker import deliver_due
from control_plane.db import Database, UnavailableLog, brief_error
from control_plane.incidents.changes import EVENTS_TOPIC
from control_plane.settings import Settings

log = logging.getLogger(__name__)

# Published (control_plane.core.changes) by whoever writes incident events, to wake the job.


async def alert_pass(
    db: Database,
    settings: Settings,
    *,
    now: datetime,
    senders: dict[str, Sender] = SENDERS,
    clock: Callable[[], datetime] | None = None,
) -> int:
    """One pass: release incidents whose maintenance ended, write due reminders, then fan out
    the outbox and deliver, round after round, until nothing is due. Returns the deliveries
    claimed. Given a `clock`, each round reads it: events the engine wrote meanwhile are fanned
    out, and retries whose backoff ran out are sent, in the same pass (else all at `now`)."""
    give_up_after = timedelta(hours=settings.alert_delivery_give_up_hours)
    async with db.session() as session:
        await release_held(session, now=now)
    async with db.session() as session:
        await remind(session, now=now)
    total = 0
    http = outbound_session(settings)
    try:
        while True:
            moment = clock() if clock is not None else now
            async with db.session() as session:
                while await dispatch_events(session, now=moment, give_up_after=give_up_after):
                    pass
            count = await deliver_due(db, settings, now=moment, senders=senders, http=http)
            if not count:
                return total
            total += count
    finally:
        await http.close()


class AlertsLoop:
    def __init__(self, db: Database, settings: Settings, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._outage = UnavailableLog()  # a pass a second meets an outage: a line per window
        self._woken = asyncio.Event()
        self._stopping = False
        db.changes.subscribe(EVENTS_TOPIC, lambda _payload: self.wake())

    def wake(self) -> None:
        self._woken.set()

    def stop(self) -> None:
        """run() returns once its current pass is done (a graceful shutdown)."""
        self._stopping = True
        self._woken.set()

    async def run(self) -> None:
        """Until cancelled or stopped: a pass, then wait for a wake-up or the interval."""
        self._stopping = False
        while not self._stopping:
            self._woken.clear()
            try:
                await alert_pass(self._db, self._settings, now=self._clock(), clock=self._clock)
            except Exception as exc:
                if not self._outage.outage_noted("the alerts pass", exc):
                    log.warning(
                        "alerts pass failed (%s); again in %.0f s",
                        brief_error(exc),
                        self._settings.alert_delivery_seconds,
                    )
            try:
                await asyncio.wait_for(self._woken.wait(), self._settings.alert_delivery_seconds)
            except TimeoutError:
                pass
