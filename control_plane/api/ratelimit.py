"""Request budgets, in memory or shared through Redis: per organization (its plan's rate per minute),
and per client address for the public routes."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)

# Public reads that reach a route (a status page's HTML or JSON that is not replayed, its feeds, the
# badges, the subscription links), per client address a minute, times TRAXO_RATE_LIMIT_MULTIPLIER:
# far above what a visitor asks, or an office behind one address reloading during an incident (a
# replayed answer spends nothing), and far below what would flood the database.
PUBLIC_READS_PER_MINUTE = 1200
PUBLIC_READS_EXCEEDED = "this address's public reads per minute"


def public_reads_per_minute(multiplier: float) -> int:
    return max(1, round(PUBLIC_READS_PER_MINUTE * multiplier))


def public_read_key(client_host: str | None) -> str:
    """The budget key of a client address's public reads."""
    return f"public:{client_host or 'unknown'}"


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the window resets

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(math.ceil(self.reset_at)).encode()),
        ]

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        storage: Storage
        if redis_url:
            scheme, _, rest = redis_url.partition("://")
            storage = RedisStorage(f"async+{scheme}://{rest}")
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._strategy = FixedWindowRateLimiter(storage)
        self._items: dict[int, RateLimitItemPerMinute] = {}

    async def hit(self, key: str, per_minute: int) -> RateDecision:
        item = self._items.get(per_minute)
        if item is None:
            item = self._items.setdefault(per_minute, RateLimitItemPerMinute(per_minute))
        try:
            allowed = await self._strategy.hit(item, key)
            stats = await self._strategy.get_window_stats(item, key)
        except Exception:
            log.exception("rate limiter storage failed; letting the request through")
            return RateDecision(True, per_minute, per_minute, time.time() + 60)
        return RateDecision(allowed, per_minute, max(0, stats.remaining), stats.reset_time)

    async def reset(self) -> None:
        await self._storage.reset()
