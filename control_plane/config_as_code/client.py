"""The public REST API as `traxo apply` and `traxo export` use it: aiohttp, a key, JSON in and out."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import aiohttp

_RETRIES_ON_429 = 3
_LONGEST_WAIT_SECONDS = 60.0  # a minute: the rate limits are per minute


class ApiError(Exception):
    """A request the API refused (its status and `error`), or one that never got an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ApiClient:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, path: str) -> Any:
        answer = await self._request("GET", path)
        if answer is None:
            raise ApiError(f"GET {path} answered without data: is {self.base_url} a Traxo API?")
        return answer

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self._request("POST", path, body)

    async def put(self, path: str, body: dict[str, Any]) -> Any:
        return await self._request("PUT", path, body)

    async def patch(self, path: str, body: dict[str, Any]) -> Any:
        return await self._request("PATCH", path, body)

    async def delete(self, path: str) -> Any:
        return await self._request("DELETE", path)

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self._session is not None, "use the client in `async with`"
        url = f"{self.base_url}{path}"
        for attempt in range(_RETRIES_ON_429 + 1):
            try:
                async with self._session.request(method, url, json=body) as response:
                    if response.status == 429 and attempt < _RETRIES_ON_429:
                        await asyncio.sleep(_retry_after(response.headers.get("Retry-After")))
                        continue
                    try:
                        answer = await response.json(content_type=None)
                    except ValueError:
                        answer = None
                    if response.status >= 400:
                        raise ApiError(_error_text(response.status, answer), response.status)
                    if not isinstance(answer, dict):  # a web page, a proxy's answer: not the API
                        raise ApiError(
                            f"{method} {path} answered {response.status} without the API's JSON: "
                            f"is {self.base_url} a Traxo API?",
                            response.status,
                        )
                    return answer.get("data")
            except aiohttp.ClientError as exc:
                raise ApiError(f"cannot reach {self.base_url} ({exc})") from exc
            except TimeoutError as exc:
                raise ApiError(f"{self.base_url} did not answer {method} {path} in time") from exc
        raise AssertionError("unreachable")  # the last attempt returns or raises


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.1), _LONGEST_WAIT_SECONDS)
    except ValueError:
        return 1.0


def _error_text(status: int, answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return f"{status}: {answer['error']}"
    return f"{status}: (no error message)"
