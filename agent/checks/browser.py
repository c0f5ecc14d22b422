"""BROWSER check: load the page in the shared Chromium, run the declarative steps, report timings, vitals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, ConsoleMessage, Page, Request, Response
from playwright.async_api import Error as PlaywrightError

from agent.checks.base import CheckError, CheckResult, CheckSpec, ErrorKind, Status, Timings
from agent.checks.browser_pool import BrowserPool, get_pool
from agent.checks.browser_steps import describe_step, run_step

__all__ = [
    "BrowserSettings",
    "aclose",
    "available",
    "browser_available",
    "navigation_timings",
    "run",
    "run_in",
]

# Measurement only: records what the page's own PerformanceObservers report, before any page script runs.
VITALS_SCRIPT = """
(() => {
  const vitals = { lcp: null, cls: 0, observers: [] };
  Object.defineProperty(window, "__traxoVitals", { value: vitals, enumerable: false });
  const onLcp = (entries) => {
    const last = entries[entries.length - 1];
    if (last) vitals.lcp = last.renderTime || last.startTime;
  };
  const onShift = (entries) => {
    for (const entry of entries) if (!entry.hadRecentInput) vitals.cls += entry.value;
  };
  try {
    const lcp = new PerformanceObserver((list) => onLcp(list.getEntries()));
    lcp.observe({ type: "largest-contentful-paint", buffered: true });
    const shift = new PerformanceObserver((list) => onShift(list.getEntries()));
    shift.observe({ type: "layout-shift", buffered: true });
    vitals.flush = () => { onLcp(lcp.takeRecords()); onShift(shift.takeRecords()); };
  } catch (error) {}
})();
"""
# The browser reports an LCP entry only once the frame holding it has been presented, which under
# load comes a while after the page painted: so when the page has painted content (FCP) but no LCP is
# in yet, wait for it, a bounded time, taking queued entries directly rather than awaiting callbacks.
_READ_VITALS = """
async () => {
  const frame = () => new Promise((done) => requestAnimationFrame(() => done()));
  const vitals = window.__traxoVitals || {};
  const flush = () => { if (vitals.flush) vitals.flush(); };
  const fcpNow = () => performance.getEntriesByName("first-contentful-paint")[0] || null;
  await frame();
  await frame();
  flush();
  const deadline = performance.now() + 2000;
  while (vitals.flush && vitals.lcp == null && performance.now() < deadline) {
    await new Promise((done) => setTimeout(done, 25));
    flush();
    if (fcpNow() == null && performance.now() > deadline - 1500) break;
  }
  const fcp = fcpNow();
  return { lcp: vitals.lcp ?? null, cls: vitals.cls ?? null, fcp: fcp ? fcp.startTime : null };
}
"""
_READ_NAVIGATION = """
() => {
  const [entry] = performance.getEntriesByType("navigation");
  return entry ? entry.toJSON() : null;
}
"""
_CAPTURE_LIMIT = 50  # console errors and failed requests kept per check
_TEXT_LIMIT = 500
_AFTERMATH_TIMEOUT_S = 5.0  # reading metrics and the failure screenshot, after the monitor timeout if need be

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrowserSettings:
    steps: tuple[dict[str, Any], ...] = ()
    step_timeout_s: float = 10.0
    viewport: dict[str, int] = field(default_factory=lambda: {"width": 1280, "height": 720})

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BrowserSettings:
        # The API validated the steps and bounds (docs/monitor-config.md); only defaults are filled in.
        viewport = config.get("viewport") or {"width": 1280, "height": 720}
        return cls(
            steps=tuple(config.get("steps") or ()),
            step_timeout_s=float(config.get("stepTimeout", 10.0)),
            viewport={"width": int(viewport["width"]), "height": int(viewport["height"])},
        )


class PageRecorder:
    """Collects console errors, uncaught exceptions and failed requests as the page emits them."""

    def __init__(self, page: Page) -> None:
        self.console_errors: list[dict[str, Any]] = []
        self.failed_requests: list[dict[str, Any]] = []
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not _is_implicit_favicon(message.location.get("url", "")):
            self._keep(
                self.console_errors, {"text": message.text[:_TEXT_LIMIT], "url": message.location.get("url")}
            )

    def _on_page_error(self, error: PlaywrightError) -> None:
        self._keep(self.console_errors, {"text": f"uncaught {error.name}: {error.message}"[:_TEXT_LIMIT]})

    def _on_request_failed(self, request: Request) -> None:
        failed = {"url": request.url, "method": request.method, "error": request.failure}
        self._keep(self.failed_requests, {**failed, "resource_type": request.resource_type})

    def _on_response(self, response: Response) -> None:
        if response.status >= 400 and not _is_implicit_favicon(response.url):
            failed = {"url": response.url, "method": response.request.method, "status": response.status}
            self._keep(self.failed_requests, {**failed, "resource_type": response.request.resource_type})

    @staticmethod
    def _keep(records: list[dict[str, Any]], record: dict[str, Any]) -> None:
        if len(records) < _CAPTURE_LIMIT:
            records.append(record)


def _is_implicit_favicon(url: str) -> bool:
    # Chromium fetches /favicon.ico on its own; a site without one has no broken page to report.
    return urlsplit(url).path == "/favicon.ico"


async def run(check: CheckSpec) -> CheckResult:
    return await run_in(get_pool(), check)


async def browser_available() -> bool:
    """Whether Chromium starts here: the agent then advertises the `browser` capability (it stays running)."""
    try:
        await get_pool().start()
    except CheckError:
        return False
    return True


async def available() -> bool:
    """The registry's capability hook: starts the pool's browser once, and says why when it cannot.

    The probe's browser is closed again: an agent that never gets a BROWSER monitor should not
    carry Chromium's few hundred MB; the first browser check launches it.
    """
    pool = get_pool()
    try:
        await pool.start()
    except CheckError as exc:
        log.warning("BROWSER checks disabled: %s", exc.message)
        return False
    finally:
        await pool.close()  # the Playwright driver may be up even without a browser
    return True


async def aclose() -> None:
    """The registry's shutdown hook: stops Chromium and the Playwright driver."""
    await get_pool().close()


async def run_in(pool: BrowserPool, check: CheckSpec) -> CheckResult:
    """Run the check in the given pool; the monitor timeout starts once a slot is free, not while queued."""
    settings = BrowserSettings.from_config(check.config)
    async with pool.slot():
        started = time.perf_counter()
        try:
            context = await pool.new_context(viewport=settings.viewport, service_workers="block")
        except CheckError as exc:
            elapsed_ms = (time.perf_counter() - started) * 1000
            return CheckResult(Status.DOWN, elapsed_ms, error_kind=exc.kind, error_message=exc.message)
        try:
            await context.add_init_script(script=VITALS_SCRIPT)
            return await _run_page(context, check, settings, started)
        except PlaywrightError as exc:
            # Steps convert their own errors; what reaches here is the browser failing around them.
            elapsed_ms = (time.perf_counter() - started) * 1000
            message = f"the browser failed during the check: {exc.message}"
            return CheckResult(Status.DOWN, elapsed_ms, error_kind=ErrorKind.INTERNAL, error_message=message)
        finally:
            with contextlib.suppress(PlaywrightError):
                await context.close()


async def _run_page(
    context: BrowserContext, check: CheckSpec, settings: BrowserSettings, started: float
) -> CheckResult:
    page = await context.new_page()
    recorder = PageRecorder(page)
    steps = [{"action": "goto", "url": check.target}, *settings.steps]
    records: list[dict[str, Any]] = []
    failure: CheckError | None = None
    status_code: int | None = None
    screenshot: bytes | None = None
    navigation: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(check.timeout_s):
            for index, step in enumerate(steps):
                record: dict[str, Any] = {
                    "index": index,
                    "action": step["action"],
                    "name": describe_step(index, step),
                }
                records.append(record)
                step_started = time.perf_counter()
                try:
                    outcome = await run_step(
                        page, index, step, float(step.get("timeout", settings.step_timeout_s))
                    )
                finally:
                    record["duration_ms"] = round((time.perf_counter() - step_started) * 1000, 1)
                record["status"] = "passed"
                screenshot = outcome.screenshot or screenshot
                if index == 0:
                    status_code = outcome.status_code
                    # Read now: after later steps navigate, the entry would describe another page.
                    navigation = await _aftermath(page.evaluate(_READ_NAVIGATION))
    except CheckError as exc:
        failure = exc
    except TimeoutError:
        failure = CheckError(
            ErrorKind.TIMEOUT,
            f"{records[-1]['name']} did not finish within the monitor timeout of {check.timeout_s:g} s",
        )
    if failure is not None:
        records[-1].update(status="failed", error=failure.message)
        # The page as it stood when the step failed: the first thing anyone debugging will ask for.
        screenshot = await _aftermath(page.screenshot(type="png")) or screenshot
    vitals = await _aftermath(page.evaluate(_READ_VITALS))
    elapsed_ms = (time.perf_counter() - started) * 1000
    timings = navigation_timings(navigation) if navigation else Timings()
    timings.total = elapsed_ms
    return CheckResult(
        status=Status.UP if failure is None else Status.DOWN,
        response_time_ms=elapsed_ms,
        status_code=status_code,
        error_kind=failure.kind if failure else None,
        error_message=failure.message if failure else None,
        timings=timings,
        details={
            "steps": records,
            "final_url": page.url,
            "web_vitals": vitals,
            "navigation": _navigation_summary(navigation),
            "console_errors": recorder.console_errors,
            "failed_requests": recorder.failed_requests,
        },
        screenshot_png=screenshot,
    )


async def _aftermath(call: Awaitable[T]) -> T | None:
    """Best effort after the run: a closed or hung page must not turn a result into an exception."""
    try:
        async with asyncio.timeout(_AFTERMATH_TIMEOUT_S):
            return await call
    except (PlaywrightError, TimeoutError):
        return None


def navigation_timings(entry: dict[str, Any]) -> Timings:
    """Phase timings (ms) from a PerformanceNavigationTiming entry; a reused connection has 0 dns and tcp."""
    secure_start = entry.get("secureConnectionStart") or 0
    tcp_end = secure_start if secure_start > 0 else entry["connectEnd"]
    return Timings(
        dns=_span(entry["domainLookupStart"], entry["domainLookupEnd"]),
        tcp=_span(entry["connectStart"], tcp_end),
        tls=_span(secure_start, entry["connectEnd"]) if secure_start > 0 else None,
        ttfb=_span(entry["requestStart"], entry["responseStart"]),
        download=_span(entry["responseStart"], entry["responseEnd"]),
        size=int(entry.get("transferSize") or 0) or None,
    )


def _span(start: float, end: float) -> float:
    return round(max(0.0, end - start), 2)


def _navigation_summary(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "dom_content_loaded_ms": round(entry["domContentLoadedEventEnd"], 2),
        "load_ms": round(entry["loadEventEnd"], 2),
        "transfer_size": entry.get("transferSize"),
        "http_status": entry.get("responseStatus"),
    }


if TYPE_CHECKING:  # mypy holds this module to the check module contract in agent/checks/base.py
    from agent.checks import browser as _module
    from agent.checks.base import AvailabilityHook, CheckModule, CloseHook

    _contract: CheckModule = _module
    _available: AvailabilityHook = _module
    _closes: CloseHook = _module
