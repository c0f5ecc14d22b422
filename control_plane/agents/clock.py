"""Time on the agents' side of the control plane, passed in so that tests move it instead of sleeping."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Protocol

from control_plane.core.timefmt import utcnow


class Clock(Protocol):
    def wall(self) -> datetime:
        """Now in UTC: leases, grants and timestamps that are stored or sent."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: how long ago something happened in this process."""


class SystemClock:
    def wall(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
