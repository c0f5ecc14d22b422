"""What an open assignment stream is told by the coordinator, and the versions it numbers changes by."""

from __future__ import annotations

import asyncio
import time

from control_plane.agents.registry import Registration

ALL = "*"  # an event for every monitor of a stream


class StreamMailbox:
    """What an open WatchAssignments stream has yet to look at: monitor ids, or ALL; and whether it
    must end (its token revoked, or a newer registration of its agent took over)."""

    def __init__(self, registration: Registration) -> None:
        self.registration = registration
        self.member_key = registration.member_key
        self.region = registration.region
        self.token_id = registration.token_id
        self.pending: set[str] = set()
        self.wake = asyncio.Event()
        self.revoked = False
        self.superseded = False

    def post(self, monitor_id: str) -> None:
        self.pending.add(monitor_id)
        self.wake.set()

    def take(self) -> set[str]:
        pending, self.pending = self.pending, set()
        self.wake.clear()
        return pending


class VersionClock:
    """Assignment versions: strictly increasing in this process, and unlike another replica's."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, time.time_ns() // 1000)
        return self._last
