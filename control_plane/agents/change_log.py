"""The versions assignment streams number what they send by, and where each member's last stream here
stopped: a reconnecting agent that names that version is sent only the changes since."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from control_plane.agents.assignment_reads import MonitorAssignment
from control_plane.agents.clock import Clock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class ChangeLog:
    def __init__(self, clock: Clock, *, members_kept: int = 10_000) -> None:
        self._clock = clock
        self._last_version = 0
        self._members_kept = members_kept
        # member key -> (version, assignments) the member's last stream here ended with, oldest first.
        self._ended: OrderedDict[str, tuple[int, dict[str, MonitorAssignment]]] = OrderedDict()

    def next_version(self) -> int:
        """Strictly increasing in this process and unlike another replica's (wall-clock microseconds,
        or one more than the last when the clock has not moved on): a version an agent brings from
        another replica matches nothing remembered here."""
        now = (self._clock.wall() - _EPOCH) // _MICROSECOND
        self._last_version = max(self._last_version + 1, now)
        return self._last_version

    def remember(self, member_key: str, version: int, sent: dict[str, MonitorAssignment]) -> None:
        """A member's stream ended holding `sent` at `version` (the newest few thousand are kept)."""
        self._ended[member_key] = (version, sent)
        self._ended.move_to_end(member_key)
        while len(self._ended) > self._members_kept:
            self._ended.popitem(last=False)

    def resume(self, member_key: str, known_version: int) -> dict[str, MonitorAssignment] | None:
        """What the member holds if its last stream here ended at `known_version`, else None."""
        ended = self._ended.get(member_key)
        if known_version and ended and ended[0] == known_version:
            return dict(ended[1])
        return None
