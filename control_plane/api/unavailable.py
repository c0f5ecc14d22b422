"""A database that cannot take work (db.database_unavailable: down, restarting, failing over, its
pool exhausted) answers 503 with Retry-After, not an unhandled error's 500 and traceback: the
request is fine, the same one succeeds once the database is back, and the pool reconnects by
itself (db.py). The log says so in one warning line, at most one per ten seconds however many requests
meet the outage, with how many did (db.UnavailableLog). /readyz says 503 meanwhile as well (readiness.py),
and the HTTP metrics count the 503s by route."""

from __future__ import annotations

from control_plane.api.responses import JsonResponse

# A restart or a failover takes seconds: a client asking again sooner finds it down again, and
# every client asking at once is load the database meets as it comes back.
RETRY_AFTER_SECONDS = 5
MESSAGE = f"The database is unavailable; try again in {RETRY_AFTER_SECONDS} s"


def unavailable_response() -> JsonResponse:
    return JsonResponse(
        {"error": MESSAGE}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )
