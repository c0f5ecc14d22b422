"""The engine's rules, with no database: a region's run of results folded into its state, and a
monitor's verdict from its regions. Everything here is a pure function of its inputs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from control_plane.domain.incident_rules import Rules


@dataclass(frozen=True, slots=True)
class Observation:
    """One result as the engine reads it (a row of the incident backlog)."""

    result_id: str
    monitor_id: str
    region: str
    at: datetime  # when it was scheduled (else checked): the order results count in
    up: bool
    error: str | None = None
    signal: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class Region:
    """A region's state (a monitor_region_states row)."""

    failing: bool = False
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    newest_at: datetime | None = None
    failing_since: datetime | None = None
    last_error: str | None = None
    no_data: bool = False


@dataclass(frozen=True, slots=True)
class Folded:
    state: Region
    counted: int  # results that counted (the rest were older than the region's newest)
    flipped_at: datetime | None  # when the last flip (failing or recovered) happened, if any
    newest_failure: Observation | None  # the newest failing result counted


_EPOCH = datetime.min.replace(tzinfo=UTC)
_CAP = 1_000_000  # counters stop growing here (a region up for years stays "many successes")


def fold_region(state: Region, observations: Iterable[Observation], rules: Rules) -> Folded:
    """Count a region's new results in the order they were checked. One older than the newest
    already counted (a spool replayed late) is skipped: it never flips the current state."""
    counted = 0
    flipped_at: datetime | None = None
    newest_failure: Observation | None = None
    for obs in sorted(observations, key=lambda o: (o.at, o.result_id)):
        if state.newest_at is not None and obs.at <= state.newest_at:
            continue
        counted += 1
        if obs.up:
            successes = min(state.consecutive_successes + 1, _CAP)
            state = replace(state, consecutive_successes=successes, consecutive_failures=0, newest_at=obs.at)
            if state.failing and successes >= rules.recoveries:
                state = replace(state, failing=False, failing_since=None)
                flipped_at = obs.at
        else:
            failures = min(state.consecutive_failures + 1, _CAP)
            since = obs.at if failures == 1 else (state.failing_since or obs.at)
            state = replace(
                state,
                consecutive_failures=failures,
                consecutive_successes=0,
                newest_at=obs.at,
                last_error=obs.error or state.last_error,
                failing_since=since,
            )
            newest_failure = obs
            if not state.failing and failures >= rules.confirmations:
                state = replace(state, failing=True)
                flipped_at = obs.at
        if state.no_data:
            state = replace(state, no_data=False)
    return Folded(state, counted, flipped_at, newest_failure)


@dataclass(frozen=True, slots=True)
class Verdict:
    down: bool
    failing_regions: tuple[str, ...]
    started_at: datetime | None  # when the quorum's failures began (down only)
    cause: str | None


def verdict(
    regions: Sequence[str],
    states: dict[str, Region],
    rules: Rules,
    *,
    rate_failing: bool = False,
    rate_cause: str | None = None,
) -> Verdict:
    """Down when at least the quorum of the monitor's regions is failing (or the failure-rate rule
    holds). The cause is the failing checks' own words, the newest failure's first."""
    failing = [r for r in regions if r in states and states[r].failing]
    if len(failing) >= rules.quorum:
        since = sorted(s for r in failing if (s := states[r].failing_since) is not None)
        started = since[rules.quorum - 1] if len(since) >= rules.quorum else (since[-1] if since else None)
        newest = max(failing, key=lambda r: states[r].newest_at or _EPOCH)
        return Verdict(True, tuple(sorted(failing)), started, states[newest].last_error or "Check failed")
    if rate_failing:
        return Verdict(True, tuple(sorted(failing)), None, rate_cause)
    return Verdict(False, tuple(sorted(failing)), None, None)


def recent_transitions(transitions: Iterable[str], at: datetime, *, window: timedelta) -> list[str]:
    """The transition times (ISO) within `window` before `at`."""
    cutoff = at - window
    return sorted(t for t in transitions if datetime.fromisoformat(t) > cutoff)


def humanize_seconds(seconds: float) -> str:
    """'45 seconds', '3 minutes', '2 hours', '1 day' (rounded down to the largest whole unit)."""
    seconds = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
