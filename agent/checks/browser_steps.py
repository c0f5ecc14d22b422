"""The declarative BROWSER steps: each config step becomes one Playwright call, and nothing else runs."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from agent.checks.base import CheckError, ErrorKind

__all__ = ["StepOutcome", "describe_step", "run_step"]

# Chromium's net error names that mean the site, not a step, is at fault.
_NET_ERROR_KINDS = (
    ("ERR_NAME_NOT_RESOLVED", ErrorKind.DNS),
    ("ERR_CERT_", ErrorKind.TLS),
    ("ERR_SSL_", ErrorKind.TLS),
    ("ERR_CONNECTION_", ErrorKind.CONNECTION),
    ("ERR_ADDRESS_UNREACHABLE", ErrorKind.CONNECTION),
    ("ERR_EMPTY_RESPONSE", ErrorKind.CONNECTION),
    ("ERR_TIMED_OUT", ErrorKind.TIMEOUT),
)


@dataclass(slots=True)
class StepOutcome:
    """What one step produced: `status_code` from a navigation, `screenshot` from a screenshot step."""

    status_code: int | None = None
    screenshot: bytes | None = None


def describe_step(index: int, step: dict[str, Any]) -> str:
    """`step 2 (click "#submit")`: how results and errors name a step (0 is the initial page load)."""
    action = step["action"]
    argument = (
        step.get("selector") or step.get("url") or step.get("text") or step.get("value") or step.get("key")
    )
    return f'step {index} ({action} "{argument}")' if argument else f"step {index} ({action})"


async def run_step(page: Page, index: int, step: dict[str, Any], timeout_s: float) -> StepOutcome:
    """Run one step within timeout_s; raise CheckError naming the step when it fails."""
    name = describe_step(index, step)
    try:
        return await _dispatch(page, step, timeout_s * 1000)
    except CheckError as exc:
        raise CheckError(exc.kind, f"{name}: {exc.message}") from exc
    except PlaywrightTimeoutError as exc:
        raise CheckError(ErrorKind.BROWSER_STEP, f"{name} timed out after {timeout_s:g} s") from exc
    except TimeoutError as exc:  # keyboard presses have no Playwright timeout; asyncio's bounds them
        raise CheckError(ErrorKind.BROWSER_STEP, f"{name} timed out after {timeout_s:g} s") from exc
    except AssertionError as exc:
        # expect() failures carry a call log; the first line says what was expected.
        raise CheckError(ErrorKind.BROWSER_STEP, f"{name} failed: {_first_line(str(exc))}") from exc
    except PlaywrightError as exc:
        raise CheckError(_kind_of(exc.message), f"{name} failed: {_first_line(exc.message)}") from exc


async def _dispatch(page: Page, step: dict[str, Any], timeout_ms: float) -> StepOutcome:
    action = step["action"]
    outcome = StepOutcome()
    if action == "goto":
        outcome.status_code = await goto(page, step["url"], timeout_ms)
    elif action == "click":
        await page.locator(step["selector"]).first.click(timeout=timeout_ms)
    elif action == "fill":
        await page.locator(step["selector"]).first.fill(str(step["value"]), timeout=timeout_ms)
    elif action == "press":
        if step.get("selector"):
            await page.locator(step["selector"]).first.press(step["key"], timeout=timeout_ms)
        else:
            async with asyncio.timeout(timeout_ms / 1000):
                await page.keyboard.press(step["key"])
    elif action == "select":
        await page.locator(step["selector"]).first.select_option(str(step["value"]), timeout=timeout_ms)
    elif action == "wait_for_selector":
        await page.wait_for_selector(step["selector"], state=step.get("state", "visible"), timeout=timeout_ms)
    elif action == "expect_text":
        scope = page.locator(step.get("selector") or "body").first
        # innerText: what a visitor can read, so hidden elements do not satisfy the step.
        await expect(scope).to_contain_text(step["text"], timeout=timeout_ms, use_inner_text=True)
    elif action == "expect_url":
        await expect(page).to_have_url(re.compile(re.escape(step["value"])), timeout=timeout_ms)
    elif action == "expect_title":
        await expect(page).to_have_title(re.compile(re.escape(step["value"])), timeout=timeout_ms)
    elif action == "screenshot":
        outcome.screenshot = await page.screenshot(type="png", timeout=timeout_ms)
    else:
        # The API accepts only the actions above; reaching here means the two disagree.
        raise CheckError(ErrorKind.INTERNAL, f"unknown browser step action {action!r}")
    return outcome


async def goto(page: Page, url: str, timeout_ms: float) -> int | None:
    """Navigate to an http(s) URL (relative to the current page); an HTTP error status fails the step."""
    absolute = urljoin(page.url, url) if page.url.startswith("http") else url
    # Only web pages: javascript: would run code and file: would read the agent's disk.
    if urlsplit(absolute).scheme not in ("http", "https"):
        raise CheckError(ErrorKind.BROWSER_STEP, f"goto {url!r}: only http and https URLs may be loaded")
    response = await page.goto(absolute, timeout=timeout_ms, wait_until="load")
    if response is None:
        return None  # same-document navigation (a #fragment): nothing was fetched
    if response.status >= 400:
        raise CheckError(ErrorKind.HTTP_STATUS, f"{absolute} answered HTTP {response.status}")
    return response.status


def _kind_of(message: str) -> ErrorKind:
    for marker, kind in _NET_ERROR_KINDS:
        if marker in message:
            return kind
    if "has been closed" in message or "crashed" in message:
        return ErrorKind.INTERNAL  # the browser died under us: not the monitored site's fault
    return ErrorKind.BROWSER_STEP


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
