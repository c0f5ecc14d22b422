"""One POST through the caller's guarded session, and what its answer means for a retry: 2xx is
delivered; 408/409/425/429 and 5xx, timeouts and connection errors are worth retrying; any other
4xx, a bad URL or a guard refusal is permanent. Never raises for the receiver's failure."""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from control_plane.alerts.guard import ForbiddenDestination
from control_plane.alerts.notification import SendContext, SendOutcome

RETRYABLE_4XX = frozenset({408, 409, 425, 429})
BODY_EXCERPT = 200


def outcome_for_status(
    status: int,
    host: str,
    body: str,
    *,
    location: str | None = None,
    accepted: frozenset[int] | None = None,
) -> SendOutcome:
    if (accepted is not None and status in accepted) or (accepted is None and 200 <= status < 300):
        return SendOutcome(delivered=True, status_code=status)
    excerpt = " ".join(body.split())[:BODY_EXCERPT]
    error = f"HTTP {status} from {host}" + (f": {excerpt}" if excerpt else "")
    if 300 <= status < 400:
        # Not followed: a POST redirected becomes a GET without its body, and the URL is the
        # receiver's to fix.
        error = f"HTTP {status} from {host}: redirects are not followed" + (
            f" (Location: {location[:BODY_EXCERPT]})" if location else ""
        )
        return SendOutcome(delivered=False, status_code=status, error=error, retryable=False)
    retryable = status >= 500 or status in RETRYABLE_4XX or not 400 <= status < 500
    return SendOutcome(delivered=False, status_code=status, error=error, retryable=retryable)


def timeout_for(context: SendContext) -> aiohttp.ClientTimeout:
    """The session's own total timeout when it is set and shorter than the setting."""
    limit = context.settings.alert_send_timeout_seconds
    session_total = context.http.timeout.total
    if session_total is not None and session_total <= limit:
        return context.http.timeout
    return aiohttp.ClientTimeout(total=limit)


def _seconds(value: float | None) -> str:
    if value is None:
        return "the time limit"
    return f"{value:g} s"


def guard_refusal(exc: BaseException) -> str | None:
    """The guard's message when `exc` (or what caused it) is the outbound guard refusing an address."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ForbiddenDestination):
            return str(seen)
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "os_error", None)
    return None


def outcome_for_exception(exc: BaseException, host: str, timeout: float | None) -> SendOutcome:
    refusal = guard_refusal(exc)
    if refusal is not None:
        return SendOutcome(delivered=False, error=refusal, retryable=False)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return SendOutcome(delivered=False, error=f"timed out after {_seconds(timeout)}")
    if isinstance(exc, aiohttp.InvalidURL):
        return SendOutcome(delivered=False, error=f"invalid URL: {exc}", retryable=False)
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED:
            return SendOutcome(delivered=False, error=f"connection refused by {host}")
        return SendOutcome(delivered=False, error=f"could not connect to {host}: {exc.os_error}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return SendOutcome(delivered=False, error=f"{host} closed the connection without answering")
    return SendOutcome(delivered=False, error=f"{type(exc).__name__} from {host}: {exc}"[:300])


async def post(
    context: SendContext,
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    accepted: frozenset[int] | None = None,
) -> SendOutcome:
    host = urlsplit(url).hostname or url
    timeout = timeout_for(context)
    try:
        async with context.http.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            # Only the start of the body is reported; a receiver cannot make us read megabytes.
            text = (await response.content.read(BODY_EXCERPT * 4)).decode("utf-8", "replace")
            location = response.headers.get("Location")
            return outcome_for_status(response.status, host, text, location=location, accepted=accepted)
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        return outcome_for_exception(exc, host, timeout.total)


def json_headers(extra: dict[str, str] | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "User-Agent": "Traxo-Webhooks/1"}
    headers.update(extra or {})
    return headers


def send_time(context: SendContext) -> datetime:
    """When this attempt is made: the caller's `extra["now"]`, else the wall clock (a webhook
    receiver rejects a webhook-timestamp five minutes from its own, so not the event's time)."""
    now = context.extra.get("now")
    return now if isinstance(now, datetime) else datetime.now(UTC)
