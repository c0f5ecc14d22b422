"""BROWSER check with Debian's Chromium against a local aiohttp site (tests/checks/web_site.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import Any

from agent.checks import browser
from agent.checks.base import CheckSpec, ErrorKind, Status
from agent.checks.browser_pool import BrowserPool
from tests.checks.web_site import LocalSite

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def browser_spec(url: str, *steps: dict[str, Any], timeout_s: float = 20.0, **config: Any) -> CheckSpec:
    return CheckSpec(
        monitor_id="m-browser",
        type="BROWSER",
        target=url,
        interval_s=60,
        timeout_s=timeout_s,
        config={"steps": list(steps), "stepTimeout": 5, **config},
    )


async def test_it_loads_a_page(browser_pool: BrowserPool, web_site: LocalSite) -> None:
    result = await browser.run_in(browser_pool, browser_spec(web_site.url("/")))

    assert result.status is Status.UP, result.error_message
    assert result.status_code == 200
    assert result.screenshot_png is None
    assert [step["status"] for step in result.details["steps"]] == ["passed"]
    assert result.details["steps"][0]["name"] == f'step 0 (goto "{web_site.url("/")}")'
    timings = result.timings
    assert timings.dns is not None and timings.tcp is not None and timings.ttfb is not None
    assert timings.download is not None and timings.tls is None  # plain http
    assert timings.total == result.response_time_ms
    vitals = result.details["web_vitals"]
    assert vitals["lcp"] is not None and vitals["lcp"] > 0
    assert vitals["fcp"] is not None
    assert vitals["cls"] == 0
    assert result.details["console_errors"] == []
    assert result.details["failed_requests"] == []


async def test_it_fills_and_submits_a_form(browser_pool: BrowserPool, web_site: LocalSite) -> None:
    spec = browser_spec(
        web_site.url("/form"),
        {"action": "fill", "selector": "#name", "value": "Ada"},
        {"action": "select", "selector": "#plan", "value": "pro"},
        {"action": "fill", "selector": "#code", "value": "42"},
        {"action": "press", "selector": "#code", "key": "Enter"},
        {"action": "expect_url", "value": "/welcome?name=Ada"},
        {"action": "expect_title", "value": "Welcome"},
        {"action": "expect_text", "text": "Plan: pro"},
        {"action": "expect_text", "selector": "h1", "text": "Welcome, Ada"},
    )
    result = await browser.run_in(browser_pool, spec)

    assert result.status is Status.UP, result.error_message
    steps = result.details["steps"]
    assert [step["action"] for step in steps] == [
        "goto",
        "fill",
        "select",
        "fill",
        "press",
        "expect_url",
        "expect_title",
        "expect_text",
        "expect_text",
    ]
    assert all(step["status"] == "passed" and step["duration_ms"] >= 0 for step in steps)
    assert result.details["final_url"].startswith(web_site.url("/welcome"))


async def test_it_follows_a_click_flow(browser_pool: BrowserPool, web_site: LocalSite) -> None:
    spec = browser_spec(
        web_site.url("/flow"),
        {"action": "click", "selector": "#reveal"},
        {"action": "wait_for_selector", "selector": "#secret", "state": "visible"},
        {"action": "expect_text", "selector": "#secret", "text": "secret is out"},
        {"action": "goto", "url": "/"},
        {"action": "click", "selector": "#to-form"},
        {"action": "wait_for_selector", "selector": "#submit"},
        {"action": "screenshot"},
    )
    result = await browser.run_in(browser_pool, spec)

    assert result.status is Status.UP, result.error_message
    assert result.details["final_url"] == web_site.url("/form")
    assert result.screenshot_png is not None and result.screenshot_png.startswith(PNG_MAGIC)


async def test_it_waits_for_a_slow_element(browser_pool: BrowserPool, web_site: LocalSite) -> None:
    spec = browser_spec(web_site.url("/slow-element"), {"action": "wait_for_selector", "selector": "#late"})
    result = await browser.run_in(browser_pool, spec)

    assert result.status is Status.UP, result.error_message
    # The element arrives 300 ms after the page's script runs, inside the navigation step: on a
    # loaded machine most of that wait is the navigation's, so the two steps together are timed.
    navigate, wait = result.details["steps"][0], result.details["steps"][1]
    assert wait["status"] == "passed"
    assert navigate["duration_ms"] + wait["duration_ms"] >= 250


async def test_it_fails_a_step_with_a_screenshot(browser_pool: BrowserPool, web_site: LocalSite) -> None:
    spec = browser_spec(
        web_site.url("/flow"),
        {"action": "expect_text", "text": "The secret is out", "timeout": 0.3},
        {"action": "click", "selector": "#reveal"},
    )
    result = await browser.run_in(browser_pool, spec)

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.BROWSER_STEP
    assert result.error_message is not None
    assert result.error_message.startswith('step 1 (expect_text "The secret is out") failed')
    assert [step["status"] for step in result.details["steps"]] == ["passed", "failed"]
    assert result.screenshot_png is not None and result.screenshot_png.startswith(PNG_MAGIC)


async def test_it_times_out_a_step(browser_pool: BrowserPool, web_site: LocalSite) -> None:
    spec = browser_spec(web_site.url("/"), {"action": "click", "selector": "#absent", "timeout": 0.3})
    result = await browser.run_in(browser_pool, spec)

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.BROWSER_STEP
    assert result.error_message == 'step 1 (click "#absent") timed out after 0.3 s'


async def test_it_stops_at_the_monitor_timeout(browser_pool: BrowserPool, web_site: LocalSite) -> None:
    spec = browser_spec(
        web_site.url("/"), {"action": "wait_for_selector", "selector": "#never"}, timeout_s=1.0
    )
    result = await browser.run_in(browser_pool, spec)

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.TIMEOUT
    assert (
        result.error_message
        == 'step 1 (wait_for_selector "#never") did not finish within the monitor timeout of 1 s'
    )
    assert result.screenshot_png is not None and result.screenshot_png.startswith(PNG_MAGIC)
    assert result.response_time_ms < 5000


async def test_it_reports_console_errors_and_failed_requests(
    browser_pool: BrowserPool, web_site: LocalSite
) -> None:
    spec = browser_spec(web_site.url("/broken"), {"action": "expect_text", "text": "Broken page"})
    result = await browser.run_in(browser_pool, spec)

    assert result.status is Status.UP, result.error_message
    texts = [error["text"] for error in result.details["console_errors"]]
    assert "boom from the page" in texts
    assert any("unhandled oops" in text for text in texts)
    assert {
        "url": web_site.url("/missing.png"),
        "method": "GET",
        "status": 404,
        "resource_type": "image",
    } in result.details["failed_requests"]


async def test_it_fails_on_an_http_error_status(browser_pool: BrowserPool, web_site: LocalSite) -> None:
    result = await browser.run_in(browser_pool, browser_spec(web_site.url("/status/503")))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.HTTP_STATUS
    assert (
        result.error_message == f'step 0 (goto "{web_site.url("/status/503")}"): '
        f"{web_site.url('/status/503')} answered HTTP 503"
    )
    assert result.screenshot_png is not None


async def test_it_reports_a_refused_connection(browser_pool: BrowserPool, web_site: LocalSite) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await browser.run_in(browser_pool, browser_spec(f"http://127.0.0.1:{port}/"))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.CONNECTION
    assert result.error_message is not None and "ERR_CONNECTION_REFUSED" in result.error_message


async def test_it_refuses_non_web_urls(browser_pool: BrowserPool, web_site: LocalSite) -> None:
    spec = browser_spec(web_site.url("/"), {"action": "goto", "url": "file:///etc/passwd"})
    result = await browser.run_in(browser_pool, spec)

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.BROWSER_STEP
    assert result.error_message is not None and "only http and https URLs" in result.error_message


async def test_it_caps_concurrent_checks(chromium_path: str, web_site: LocalSite) -> None:
    pool = BrowserPool(chromium_path, max_concurrent=2)
    try:
        results = await asyncio.gather(
            *(browser.run_in(pool, browser_spec(web_site.url("/slow"))) for _ in range(4))
        )
    finally:
        await pool.close()

    assert all(result.status is Status.UP for result in results), [result.error_message for result in results]
    assert web_site.max_in_flight == 2
    assert pool.launches == 1  # one browser for all four checks


async def test_it_restarts_a_crashed_browser(chromium_path: str, web_site: LocalSite) -> None:
    pool = BrowserPool(chromium_path)
    try:
        first = await browser.run_in(pool, browser_spec(web_site.url("/")))
        pid = await pool.process_id()
        assert pid is not None and pool.browser is not None
        disconnected = asyncio.Event()
        pool.browser.on("disconnected", lambda _: disconnected.set())
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(disconnected.wait(), 10)

        second = await browser.run_in(pool, browser_spec(web_site.url("/")))
        new_pid = await pool.process_id()
    finally:
        await pool.close()

    assert first.status is Status.UP, first.error_message
    assert second.status is Status.UP, second.error_message
    assert pool.launches == 2
    assert new_pid is not None and new_pid != pid


async def test_it_reports_a_missing_browser(web_site: LocalSite, tmp_path: Any) -> None:
    pool = BrowserPool(str(tmp_path / "no-chromium-here"))
    result = await browser.run_in(pool, browser_spec(web_site.url("/")))
    await pool.close()

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.UNSUPPORTED
    assert result.error_message is not None and "no-chromium-here" in result.error_message


async def test_it_advertises_the_browser_capability(chromium_path: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("TRAXO_AGENT_CHROMIUM", chromium_path)
    monkeypatch.setattr("agent.checks.browser_pool._pool", None)
    pool = browser.get_pool()
    try:
        assert await browser.browser_available()
        assert pool.launches == 1
    finally:
        await pool.close()


def test_it_splits_navigation_timing_into_phases() -> None:
    entry = {
        "domainLookupStart": 1.0, "domainLookupEnd": 5.0,
        "connectStart": 5.0, "secureConnectionStart": 9.0, "connectEnd": 20.0,
        "requestStart": 20.5, "responseStart": 40.5, "responseEnd": 43.0, "transferSize": 1234,
    }  # fmt: skip
    timings = browser.navigation_timings(entry)

    assert (timings.dns, timings.tcp, timings.tls, timings.ttfb, timings.download) == (4, 4, 11, 20, 2.5)
    assert timings.size == 1234
