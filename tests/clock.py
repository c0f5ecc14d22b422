"""A clock tests move instead of sleeping: the wall clock plus an offset that only grows."""

from __future__ import annotations

from datetime import datetime, timedelta

from control_plane.core.timefmt import utcnow


class MovableClock:
    """What the runtime of the test app reads as "now"; `advance()` moves every later reading."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self._offset

    def advance(self, by: timedelta) -> None:
        assert by >= timedelta(0), "time only moves forward"
        self._offset += by

    def reset(self) -> None:
        """Back to the wall clock: between tests only (within one, time only moves forward)."""
        self._offset = timedelta(0)
