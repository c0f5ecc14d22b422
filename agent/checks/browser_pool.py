"""One Chromium shared by BROWSER checks: started lazily, restarted after a crash, a context per check."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from agent.checks.base import CheckError, ErrorKind

__all__ = ["CHROMIUM_ENV", "LAUNCH_ARGS", "BrowserPool", "configure_pool", "get_pool"]

CHROMIUM_ENV = "TRAXO_AGENT_CHROMIUM"
# Quiet, predictable Chromium: no sandbox (containers lack the namespaces it needs, and the agent
# runs no untrusted code), no GPU, and none of the background traffic that would skew timings.
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # Memory: containers often have a 64 MB /dev/shm; and closed pages' renderers (and the spare
    # renderer Chromium keeps warm) would otherwise pile up beyond the concurrent-check cap.
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--renderer-process-limit=2",
    "--no-zygote",  # with --no-sandbox, zygotes only add processes
    "--in-process-gpu",
    "--disable-features=SpareRendererForSitePerProcess,Translate,MediaRouter",
)
DEFAULT_MAX_CONCURRENT = 2
_LAUNCH_TIMEOUT_MS = 30_000


def find_chromium(executable_path: str | None = None) -> str | None:
    """The agent's setting first, then $TRAXO_AGENT_CHROMIUM, then `chromium` on PATH."""
    return executable_path or os.environ.get(CHROMIUM_ENV) or shutil.which("chromium")


class BrowserPool:
    """Owns the Playwright driver and one browser; checks borrow a slot and get a fresh context."""

    def __init__(
        self, executable_path: str | None = None, max_concurrent: int = DEFAULT_MAX_CONCURRENT
    ) -> None:
        self.executable_path = find_chromium(executable_path)
        self.max_concurrent = max_concurrent
        self._slots = asyncio.Semaphore(max_concurrent)
        self._lock = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self.launches = 0  # how many times Chromium was (re)started: a restart counter for metrics and tests

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for one of max_concurrent places; callers start their timeout only once inside."""
        async with self._slots:
            yield

    async def start(self) -> Browser:
        """Return the running browser, launching (or relaunching after a crash) when needed."""
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            await self._discard_browser()
            if self.executable_path is None:
                raise CheckError(
                    ErrorKind.UNSUPPORTED,
                    f"Chromium not found: set {CHROMIUM_ENV} or install it (apt-get install chromium)",
                )
            try:
                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=self.executable_path, args=list(LAUNCH_ARGS), timeout=_LAUNCH_TIMEOUT_MS
                )
            except PlaywrightError as exc:
                raise CheckError(
                    ErrorKind.UNSUPPORTED, f"Chromium at {self.executable_path} did not start: {exc.message}"
                ) from exc
            self.launches += 1
            return self._browser

    async def new_context(self, **options: Any) -> BrowserContext:
        browser = await self.start()
        try:
            return await browser.new_context(**options)
        except PlaywrightError:
            # The browser may have died since start() looked (a crash is noticed asynchronously):
            # relaunch once, and let a second failure through as the real error.
            async with self._lock:
                if self._browser is browser:
                    await self._discard_browser()
            browser = await self.start()
            try:
                return await browser.new_context(**options)
            except PlaywrightError as exc:
                raise CheckError(ErrorKind.INTERNAL, f"cannot open a browser context: {exc.message}") from exc

    async def process_id(self) -> int | None:
        """The browser process id (for RSS measurement and crash tests), read from Chromium itself."""
        if self._browser is None or not self._browser.is_connected():
            return None
        session = await self._browser.new_browser_cdp_session()
        try:
            info = await session.send("SystemInfo.getProcessInfo")
        finally:
            await session.detach()
        return next(
            (int(process["id"]) for process in info["processInfo"] if process["type"] == "browser"), None
        )

    @property
    def browser(self) -> Browser | None:
        return self._browser

    async def close(self) -> None:
        async with self._lock:
            await self._discard_browser()
            if self._playwright is not None:
                with contextlib.suppress(PlaywrightError):
                    await self._playwright.stop()
                self._playwright = None

    async def _discard_browser(self) -> None:
        if self._browser is not None:
            with contextlib.suppress(PlaywrightError):
                await self._browser.close()
            self._browser = None


_pool: BrowserPool | None = None


def configure_pool(
    executable_path: str | None = None, max_concurrent: int = DEFAULT_MAX_CONCURRENT
) -> BrowserPool:
    """Set the process's pool from the agent settings; call before the first BROWSER check."""
    global _pool
    _pool = BrowserPool(executable_path, max_concurrent)
    return _pool


def get_pool() -> BrowserPool:
    """The process's pool, created on first use with defaults (never at import time)."""
    global _pool
    if _pool is None:
        _pool = BrowserPool()
    return _pool
