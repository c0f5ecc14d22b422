"""A small client for RevenueCat's REST API (v1): reading a subscriber for the billing portal.

Every failure (unreachable, timeout, error status, a body that is not what RevenueCat documents)
becomes one UpstreamError here, so callers never see aiohttp's exceptions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from control_plane.core.errors import UpstreamError

__all__ = ["RevenueCatClient", "Subscriber"]

log = logging.getLogger(__name__)

# Error bodies are quoted back to the caller; keep them short.
_MAX_QUOTED = 200


@dataclass(frozen=True, slots=True)
class Subscriber:
    subscriptions: dict[str, Any]
    entitlements: dict[str, Any]
    management_url: str | None


class RevenueCatClient:
    def __init__(self, base_url: str, secret_key: str, timeout_seconds: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._secret_key = secret_key
        self._timeout = timeout_seconds

    async def get_subscriber(self, app_user_id: str) -> Subscriber:
        """`GET /v1/subscribers/{app_user_id}` (RevenueCat creates unknown subscribers, empty)."""
        url = f"{self._base_url}/v1/subscribers/{quote(app_user_id, safe='')}"
        headers = {"Authorization": f"Bearer {self._secret_key}", "Accept": "application/json"}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout)) as http,
                http.get(url, headers=headers) as response,
            ):
                status = response.status
                body = await response.read()
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors (asyncio's, since 3.11)
            raise UpstreamError(f"RevenueCat did not answer within {self._timeout:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            # The details (host, port, errno) are for the operator's log, not the API caller.
            log.warning("RevenueCat request to %s failed: %r", url, exc)
            raise UpstreamError(f"RevenueCat is unreachable ({type(exc).__name__})") from exc
        if status >= 400:
            log.warning("RevenueCat answered HTTP %s to %s: %r", status, url, body[:_MAX_QUOTED])
            raise UpstreamError(f"RevenueCat answered HTTP {status}{_quoted_message(body)}")
        return _parse_subscriber(body)


def _parse_subscriber(body: bytes) -> Subscriber:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise UpstreamError("RevenueCat answered with a body that is not valid JSON") from exc
    subscriber = document.get("subscriber") if isinstance(document, dict) else None
    if not isinstance(subscriber, dict):
        raise UpstreamError("RevenueCat answered without a 'subscriber' object")
    subscriptions = subscriber.get("subscriptions") or {}
    entitlements = subscriber.get("entitlements") or {}
    management_url = subscriber.get("management_url")
    if not isinstance(subscriptions, dict) or not isinstance(entitlements, dict):
        raise UpstreamError("RevenueCat answered with subscriptions or entitlements that are not objects")
    if management_url is not None and not isinstance(management_url, str):
        raise UpstreamError("RevenueCat answered with a management_url that is not a string")
    return Subscriber(subscriptions, entitlements, management_url)


def _quoted_message(body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    message = document.get("message") if isinstance(document, dict) else None
    return f": {str(message)[:_MAX_QUOTED]}" if message else ""
