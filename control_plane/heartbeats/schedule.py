"""When a heartbeat's next ping is due: every `interval` seconds, or at each `config.cron` time in
`config.timezone`, plus `config.gracePeriod`; and the words a late heartbeat is reported in.

Cron times are wall-clock times of the zone, as cron itself reads them (Debian cron's rules): a
time the clocks skip (02:30 on the night they spring forward) is due when it would have been had
the old offset held (an hour later by the clock), and a time the clocks pass twice (the night
they fall back) is due once, at its first occurrence. Either way a job that cron ran is never
reported late for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

DEFAULT_GRACE_SECONDS = 60
DEFAULT_TIMEZONE = "UTC"
# Times cron passes twice are skipped at most an hour's worth; this bounds the search regardless.
_MAX_CANDIDATES = 200


@dataclass(frozen=True, slots=True)
class Schedule:
    interval_seconds: int
    cron: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    grace_seconds: int = DEFAULT_GRACE_SECONDS
    max_runtime_seconds: int | None = None
    min_runtime_seconds: int | None = None

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.grace_seconds)


def schedule_of(interval_seconds: int, config: dict[str, Any] | None) -> Schedule:
    """A HEARTBEAT monitor's schedule from its interval and its (validated) config."""
    config = config or {}
    grace = config.get("gracePeriod")
    return Schedule(
        interval_seconds=int(interval_seconds),
        cron=config.get("cron") or None,
        timezone=config.get("timezone") or DEFAULT_TIMEZONE,
        grace_seconds=DEFAULT_GRACE_SECONDS if grace is None else int(grace),
        max_runtime_seconds=config.get("maxRuntime"),
        min_runtime_seconds=config.get("minRuntime"),
    )


def next_due(schedule: Schedule, after: datetime) -> datetime:
    """When the ping after one at `after` is due (UTC; the grace period not included)."""
    if schedule.cron is None:
        return after + timedelta(seconds=schedule.interval_seconds)
    return next_cron_time(schedule.cron, ZoneInfo(schedule.timezone), after)


def next_cron_time(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first time `expression` names, in `zone`'s wall-clock time, strictly after `after`."""
    local = after.astimezone(zone).replace(tzinfo=None)
    times = croniter(expression, local)
    for _ in range(_MAX_CANDIDATES):
        wall = times.get_next(datetime)
        # fold=0: a skipped time keeps the offset before the change (due later by the clock); a
        # repeated one is its first occurrence, and its second is found to be past and skipped.
        moment = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        if moment > after:
            return moment
    raise ValueError(f"cron {expression!r} names no time after {after.isoformat()}")


def describe_expectation(schedule: Schedule, due_at: datetime) -> str:
    """'expected every 5 minutes, grace 60 s', or for a cron schedule
    'expected at 02:00 Europe/Paris (cron 0 2 * * *), grace 60 s'."""
    if schedule.cron is None:
        expected = f"expected every {duration_words(schedule.interval_seconds)}"
    else:
        local = due_at.astimezone(ZoneInfo(schedule.timezone))
        expected = f"expected at {local:%H:%M} {schedule.timezone} (cron {schedule.cron})"
    return f"{expected}, grace {schedule.grace_seconds} s"


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def duration_words(seconds: float) -> str:
    """'7 minutes', '1 hour 5 minutes', '45 seconds': the two largest units, rounded down."""
    remaining = max(0, int(seconds))
    parts: list[str] = []
    for name, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count and len(parts) < 2:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
        elif parts:
            break  # '1 hour 5 minutes', never '1 day 5 seconds'
    return " ".join(parts) or "0 seconds"
