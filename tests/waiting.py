"""Waiting in tests: `eventually()` retries a condition until it holds, in place of sleeps and loops.

A test that sleeps guesses how long something takes: too short is flaky, too long is slow. These ask
again until the condition holds, and fail, naming what was awaited, only once the limit has passed.
Where the peer signals its changes with an `asyncio.Event`, pass it as `wake`: the condition is then
asked again on each change instead of on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

__all__ = ["eventually", "eventually_sync"]

T = TypeVar("T")


@overload
async def eventually(
    condition: Callable[[], Awaitable[T]],
    within: float = ...,
    what: str = ...,
    interval: float = ...,
    *,
    wake: asyncio.Event | None = ...,
) -> T: ...


@overload
async def eventually(
    condition: Callable[[], T],
    within: float = ...,
    what: str = ...,
    interval: float = ...,
    *,
    wake: asyncio.Event | None = ...,
) -> T: ...


async def eventually(
    condition: Callable[[], Any],
    within: float = 5.0,
    what: str = "the condition",
    interval: float = 0.02,
    *,
    wake: asyncio.Event | None = None,
) -> Any:
    """Returns the first truthy value of `condition()` (plain or async); fails after `within` seconds.

    With `wake`, the condition is asked again each time the event is set rather than every `interval`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if wake is not None:
            # Cleared before asking, so a change made while an async condition runs still wakes us.
            wake.clear()
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(_not_within(within, what, value))
        if wake is None:
            await asyncio.sleep(min(interval, remaining))
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await wake.wait()


def eventually_sync(
    condition: Callable[[], T], within: float = 5.0, what: str = "the condition", interval: float = 0.05
) -> T:
    """`eventually()` for plain tests that drive another process or thread; blocks the caller."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(_not_within(within, what, value))
        time.sleep(min(interval, remaining))


def _not_within(within: float, what: str, last: object) -> str:
    return f"not within {within:g} s: {what} (last: {last!r})"
