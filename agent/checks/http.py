"""HTTP checks: aiohttp with one shared session whose connector never pools, and measured phases.

Every check opens a fresh connection (force_close), so dns, tcp and tls are real per check. The
connector does the TCP connect and the TLS handshake as two steps (connect, then start_tls) so the
two are timed apart; aiohttp's own path does both inside one create_connection call.
"""

from __future__ import annotations

import asyncio
import ssl
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import is_ip_address

from agent.checks._net import os_error_reason
from agent.checks.assertions import ObservedResponse, check_response
from agent.checks.base import CheckError, CheckResult, CheckSpec, ErrorKind, Status, Timings

__all__ = ["HttpClient", "aclose", "run"]

USER_AGENT = "Traxo-Agent/0.1"
MAX_REDIRECTS = 10


@dataclass(slots=True)
class _Phases:
    dns: float | None = None
    tcp: float | None = None
    tls: float | None = None
    connected_at: float | None = None  # perf_counter when the (last hop's) connection was ready


# The connector is shared by every check; the phases of the check that is connecting are found through
# the task's context, which aiohttp's connect() runs in.
_phases: ContextVar[_Phases | None] = ContextVar("traxo_http_phases", default=None)


class _TimedConnector(aiohttp.TCPConnector):
    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        phases = _phases.get()
        if phases is None or is_ip_address(host):
            return await super()._resolve_host(host, port, traces=traces)
        started = perf_counter()
        try:
            return await super()._resolve_host(host, port, traces=traces)
        finally:
            phases.dns = (perf_counter() - started) * 1000

    async def _wrap_create_connection(
        self,
        *args: Any,
        addr_infos: Any,
        req: Any,
        timeout: Any,  # noqa: ASYNC109 - aiohttp's signature, overridden
        client_error: type[Exception] = aiohttp.ClientConnectorError,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        tls = kwargs.pop("ssl", None)
        kwargs.pop("server_hostname", None)  # only valid together with ssl
        phases = _phases.get() or _Phases()
        started = perf_counter()
        transport, protocol = await super()._wrap_create_connection(
            *args, addr_infos=addr_infos, req=req, timeout=timeout, client_error=client_error, **kwargs
        )
        connected = perf_counter()
        phases.tcp, phases.connected_at = (connected - started) * 1000, connected
        if not tls:
            return transport, protocol
        tls_transport, tls_protocol = await self._start_tls_connection(transport, req, timeout, client_error)
        handshaken = perf_counter()
        phases.tls, phases.connected_at = (handshaken - connected) * 1000, handshaken
        return tls_transport, tls_protocol  # type: ignore[return-value]


class HttpClient:
    """One aiohttp session for all HTTP checks of an event loop: no per-check heavy objects."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, resolver: AbstractResolver | None = None):
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = _TimedConnector(
                limit=0,  # the scheduler bounds concurrency
                force_close=True,  # a fresh connection per check
                use_dns_cache=False,
                ssl=self._ssl_context,
                resolver=self._resolver,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # run() bounds the whole check instead
                cookie_jar=aiohttp.DummyCookieJar(),  # no state leaks from one check to the next
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def run(self, check: CheckSpec) -> CheckResult:
        phases = _Phases()
        token = _phases.set(phases)
        started = perf_counter()
        timings = Timings()
        try:
            async with asyncio.timeout(check.timeout_s):
                observed = await self._fetch(check, phases, timings, started)
        except TimeoutError:
            stage = (
                "connecting"
                if phases.connected_at is None
                else ("waiting for the response" if timings.ttfb is None else "reading the body")
            )
            error = CheckError(ErrorKind.TIMEOUT, f"timed out after {check.timeout_s:g}s while {stage}")
            return _down(error, phases, timings, started)
        except CheckError as error:
            return _down(error, phases, timings, started)
        finally:
            _phases.reset(token)
        try:
            check_response(check, observed)
        except CheckError as error:
            return _down(error, phases, timings, started, status_code=observed.status)
        return CheckResult(
            Status.UP,
            timings.total or 0.0,
            status_code=observed.status,
            timings=timings,
            details=_details(observed),
        )

    async def _fetch(self, check: CheckSpec, phases: _Phases, timings: Timings, started: float) -> _Observed:
        config = check.config
        headers = {"User-Agent": USER_AGENT, **(config.get("headers") or {})}
        try:
            async with self._get_session().request(
                (config.get("method") or check.method or "GET").upper(),
                check.target,
                headers=headers,
                data=config.get("body"),
                allow_redirects=config.get("followRedirects", True),
                max_redirects=MAX_REDIRECTS,
                ssl=True if config.get("verifyTls", True) else False,
            ) as response:
                headers_at = perf_counter()
                timings.ttfb = (headers_at - (phases.connected_at or started)) * 1000
                body = await response.read()
                finished = perf_counter()
        except aiohttp.ClientError as exc:
            raise _convert(exc) from exc
        _fill(timings, phases, started, finished)
        timings.download, timings.size = (finished - headers_at) * 1000, len(body)
        return _Observed(
            status=response.status,
            headers=response.headers,
            body=body,
            text=body.decode(response.charset or "utf-8", errors="replace"),
            response_time_ms=timings.total or 0.0,
            redirects=len(response.history),
            final_url=str(response.url),
        )


@dataclass(slots=True)
class _Observed(ObservedResponse):
    redirects: int = 0
    final_url: str = ""


def _convert(exc: aiohttp.ClientError) -> CheckError:
    """The one place aiohttp's exception tree becomes an error kind."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return CheckError(ErrorKind.DNS, f"could not resolve {exc.host}: {exc.os_error}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return CheckError(ErrorKind.TLS, f"certificate of {exc.host} not trusted: {exc.certificate_error}")
    if isinstance(exc, aiohttp.ClientSSLError):
        return CheckError(ErrorKind.TLS, f"TLS handshake with {exc.host} failed: {exc.os_error}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = os_error_reason(exc.os_error)
        return CheckError(ErrorKind.CONNECTION, f"could not connect to {exc.host}:{exc.port}: {reason}")
    if isinstance(exc, aiohttp.TooManyRedirects):
        return CheckError(ErrorKind.HTTP_STATUS, f"more than {MAX_REDIRECTS} redirects")
    if isinstance(exc, aiohttp.InvalidURL):
        return CheckError(ErrorKind.INTERNAL, f"invalid URL {exc.url}")
    return CheckError(ErrorKind.CONNECTION, f"{type(exc).__name__}: {exc}")


def _fill(timings: Timings, phases: _Phases, started: float, finished: float) -> None:
    timings.dns, timings.tcp, timings.tls = phases.dns, phases.tcp, phases.tls
    timings.total = (finished - started) * 1000


def _down(
    error: CheckError, phases: _Phases, timings: Timings, started: float, status_code: int | None = None
) -> CheckResult:
    if timings.total is None:
        _fill(timings, phases, started, perf_counter())
    return CheckResult(
        Status.DOWN,
        timings.total or 0.0,
        status_code=status_code,
        error_kind=error.kind,
        error_message=error.message,
        timings=timings,
    )


def _details(observed: _Observed) -> dict[str, Any]:
    return {"redirects": observed.redirects, "finalUrl": observed.final_url} if observed.redirects else {}


_default_client: HttpClient | None = None


async def run(check: CheckSpec) -> CheckResult:
    global _default_client
    if _default_client is None:  # created on first use, inside the running loop, never at import
        _default_client = HttpClient()
    return await _default_client.run(check)


async def aclose() -> None:
    if _default_client is not None:
        await _default_client.aclose()


if TYPE_CHECKING:  # mypy holds this module to the check module contract in agent/checks/base.py
    from agent.checks import http as _module
    from agent.checks.base import CheckModule, CloseHook

    _contract: CheckModule = _module
    _closes: CloseHook = _module
