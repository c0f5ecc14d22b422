"""A database that cannot take work (db.database_unavailable: down, restarting, failing over, its
pool exhausted) answers 503 with Retry-After, not an unhandled error's 500 and traceback: the
request is fine, the same one succeeds once the database is back, and the pool reconnects by
itself (db.py). The log says so in one warning line, at most one per LOG_EVERY_SECONDS however many
requests meet the outage, with how many did. /readyz says 503 meanwhile as well (readiness.py),
and the HTTP metrics count the 503s by route."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from control_plane.api.responses import JsonResponse
from control_plane.db import brief_error

log = logging.getLogger(__name__)

# A restart or a failover takes seconds: a client asking again sooner finds it down again, and
# every client asking at once is load the database meets as it comes back.
RETRY_AFTER_SECONDS = 5
LOG_EVERY_SECONDS = 10.0
MESSAGE = f"The database is unavailable; try again in {RETRY_AFTER_SECONDS} s"


class UnavailableLog:
    """The outage's warnings: the first request's at once, then one line per `every` seconds
    naming the requests answered 503 since the last line."""

    def __init__(self, every: float = LOG_EVERY_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._logged_at: float | None = None
        self._unlogged = 0

    def note(self, method: str, path: str, exc: BaseException, request_id: str | None) -> None:
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self._every:
            self._unlogged += 1
            return
        since = f" ({self._unlogged} more answered 503 since the last line)" if self._unlogged else ""
        self._logged_at, self._unlogged = now, 0
        log.warning(
            "database unavailable, answered 503 to %s %s%s: %s",
            method,
            path,
            since,
            brief_error(exc),
            extra={"request_id": request_id},
        )


def unavailable_response() -> JsonResponse:
    return JsonResponse(
        {"error": MESSAGE}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )
