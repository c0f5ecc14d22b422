"""What the insights rules read about one LLM monitor: its usage aggregates over the window (the
last 24 h) and the window before, as the worker gathers them (insights_job.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

STORM_SECONDS = 60  # failures of one prompt this close together are retries


@dataclass(frozen=True, slots=True)
class ModelWindow:
    """One (provider, model)'s rollups over a window."""

    provider: str
    model: str
    events: int
    errors: int
    unpriced_events: int
    latency_histogram: dict[str, int]


@dataclass(frozen=True, slots=True)
class ShortCalls:
    """One (provider, model)'s calls in the window, and those of them that were short."""

    provider: str
    model: str
    calls: int
    short_calls: int
    short_prompt_tokens: int
    short_completion_tokens: int
    short_cached_tokens: int


@dataclass(frozen=True, slots=True)
class RepeatedPrompt:
    prompt_hash: str
    calls: int


@dataclass(frozen=True, slots=True)
class PromptRepeats:
    """Calls with a prompt hash seen more than once in the window."""

    hashed_calls: int = 0  # calls that carried a prompt hash
    repeated_calls: int = 0  # calls after each hash's first
    repeats_cost_usd: float | None = None  # what those repeats cost (None: none was priced)
    most_calls: int = 0  # the most calls of one hash
    top: tuple[RepeatedPrompt, ...] = ()


@dataclass(frozen=True, slots=True)
class FailedCall:
    at: datetime
    cost_usd: float | None


@dataclass(frozen=True, slots=True)
class FailureBurst:
    """One prompt hash's failures in the window."""

    prompt_hash: str
    failures: int
    longest_burst: int  # the most failures within STORM_SECONDS
    retries: int  # failures that came within STORM_SECONDS of the previous failure
    retries_cost_usd: float | None


@dataclass(frozen=True, slots=True)
class RagUsage:
    """One (provider, model)'s calls that reported both context tokens and relevance."""

    provider: str
    model: str
    events: int
    prompt_tokens: int
    context_tokens: int
    relevance_sum: float
    excess_context_tokens: float  # sum of context tokens x (1 - relevance): the irrelevant share


@dataclass(frozen=True, slots=True)
class Usage:
    """Everything the rules read about one monitor."""

    window: timedelta
    current: Sequence[ModelWindow] = ()
    previous: Sequence[ModelWindow] = ()
    short_calls: Sequence[ShortCalls] = ()
    prompts: PromptRepeats = PromptRepeats()
    bursts: Sequence[FailureBurst] = ()
    rag: Sequence[RagUsage] = ()

    @property
    def per_day(self) -> float:
        return timedelta(days=1) / self.window


def burst_of(prompt_hash: str, failures: Iterable[FailedCall]) -> FailureBurst:
    """One prompt's failures (in time order) summed up: the longest run within STORM_SECONDS, and
    the retries (failures that followed another within STORM_SECONDS) with their cost."""
    window = timedelta(seconds=STORM_SECONDS)
    times: list[datetime] = []
    longest = retries = 0
    retries_cost: float | None = None
    start = 0
    for failure in failures:
        if times and failure.at - times[-1] <= window:
            retries += 1
            if failure.cost_usd is not None:
                retries_cost = (retries_cost or 0.0) + failure.cost_usd
        times.append(failure.at)
        while failure.at - times[start] > window:
            start += 1
        longest = max(longest, len(times) - start)
    return FailureBurst(prompt_hash, len(times), longest, retries, retries_cost)
