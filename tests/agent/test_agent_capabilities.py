"""What the agent advertises: each check type only when this host can run it, probed once at start."""

from __future__ import annotations

import asyncio
import os
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from agent_fake_control_plane import FakeControlPlane

from agent.checks import load_registry
from agent.checks.base import CheckSpec
from agent.checks.browser_pool import CHROMIUM_ENV, get_pool
from agent.checks.ping import can_ping
from agent.runtime import Agent
from agent.settings import AgentSettings, parse_settings
from tests.tools import require_program

REQUIRED = {"CONTROL_PLANE": "cp:50051", "TOKEN": "t", "REGION": "eu"}


def check_module(name: str, **hooks: object) -> types.ModuleType:
    async def run(check: CheckSpec) -> None:
        raise AssertionError("never called")

    module = types.ModuleType(name)
    module.run = run  # type: ignore[attr-defined]
    for hook, value in hooks.items():
        setattr(module, hook, value)
    return module


class Agents:
    """Agents with the real registry: every check module, probed against this host."""

    def __init__(self, settings: Callable[..., AgentSettings]) -> None:
        self._settings = settings
        self.running: dict[Agent, asyncio.Task[None]] = {}

    async def start(self, **overrides: object) -> Agent:
        agent = Agent(self._settings(**overrides))
        self.running[agent] = asyncio.create_task(agent.run())
        return agent

    async def stop(self, agent: Agent) -> None:
        agent.request_stop()
        await asyncio.gather(self.running.pop(agent), return_exceptions=True)


@pytest.fixture
async def agents(agent_settings: Callable[..., AgentSettings]) -> AsyncIterator[Agents]:
    agents = Agents(agent_settings)
    yield agents
    for agent in list(agents.running):
        await agents.stop(agent)


async def registered_capabilities(control_plane: FakeControlPlane) -> set[str]:
    await control_plane.wait_for(lambda: bool(control_plane.registrations), timeout_s=60)
    return set(control_plane.registrations[0].capabilities)


async def test_it_advertises_what_needs_no_privilege_and_icmp_only_when_it_can_ping(
    control_plane: FakeControlPlane, agents: Agents
) -> None:
    await agents.start(chromium_path="/nonexistent/chromium")

    capabilities = await registered_capabilities(control_plane)

    assert {"http", "tcp", "dns", "ssl"} <= capabilities
    assert ("icmp" in capabilities) is can_ping()


async def test_it_leaves_out_browser_when_chromium_does_not_start(
    control_plane: FakeControlPlane, agents: Agents
) -> None:
    agent = await agents.start(chromium_path="/nonexistent/chromium")

    assert "browser" not in await registered_capabilities(control_plane)
    assert "BROWSER" not in agent.registry.runners
    assert get_pool().browser is None


async def test_it_advertises_browser_when_chromium_starts_and_does_not_keep_it_idle(
    control_plane: FakeControlPlane, agents: Agents
) -> None:
    chromium = require_program("chromium", os.environ.get(CHROMIUM_ENV))
    agent = await agents.start(chromium_path=chromium, max_browser_checks=3)

    assert "browser" in await registered_capabilities(control_plane)
    pool = get_pool()
    assert (pool.executable_path, pool.max_concurrent, pool.launches) == (chromium, 3, 1)
    # The probe's browser is closed: an agent without BROWSER monitors carries no Chromium.
    assert pool.browser is None

    await agents.stop(agent)
    assert pool.browser is None


async def test_probe_runs_plain_and_async_hooks_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def plain() -> bool:
        calls.append("plain")
        return True

    async def unable() -> bool:
        calls.append("unable")
        return False

    def broken() -> bool:
        raise OSError("no raw sockets")

    for name, hook in (
        ("traxo_test_plain", plain),
        ("traxo_test_unable", unable),
        ("traxo_test_broken", broken),
    ):
        monkeypatch.setitem(sys.modules, name, check_module(name, available=hook))
    registry = load_registry(
        {
            "PING": ("traxo_test_plain", "icmp"),
            "BROWSER": ("traxo_test_unable", "browser"),
            "DNS": ("traxo_test_broken", "dns"),
            "SSL": ("traxo_test_missing_module", "ssl"),
        }
    )
    assert registry.capabilities == []  # nothing is advertised before the host is probed

    await registry.probe()
    await registry.probe()

    assert registry.capabilities == ["icmp"]
    assert set(registry.runners) == {"PING"}
    assert sorted(calls) == ["plain", "unable"]


async def test_aclose_reaches_every_imported_module_even_unavailable_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[str] = []

    def closer(name: str) -> Callable[[], Awaitable[None]]:
        async def aclose() -> None:
            closed.append(name)
            if name == "traxo_test_a":
                raise RuntimeError("already gone")

        return aclose

    async def unable() -> bool:
        return False

    for name in ("traxo_test_a", "traxo_test_b"):
        module = check_module(name, aclose=closer(name), available=unable)
        monkeypatch.setitem(sys.modules, name, module)
    registry = load_registry({"PING": ("traxo_test_a", "icmp"), "BROWSER": ("traxo_test_b", "browser")})
    await registry.probe()

    await registry.aclose()

    assert closed == ["traxo_test_a", "traxo_test_b"]


def test_browser_settings_from_flags_and_env() -> None:
    env = {f"TRAXO_AGENT_{key}": value for key, value in REQUIRED.items()}
    defaults = parse_settings([], env=env)
    assert (defaults.chromium_path, defaults.max_browser_checks) == (None, 2)

    from_env = parse_settings(
        [], env={**env, CHROMIUM_ENV: "/opt/chromium", "TRAXO_AGENT_MAX_BROWSER_CHECKS": "4"}
    )
    assert (from_env.chromium_path, from_env.max_browser_checks) == ("/opt/chromium", 4)

    flags = parse_settings(["--chromium", "/usr/bin/chromium", "--max-browser-checks", "1"], env=env)
    assert (flags.chromium_path, flags.max_browser_checks) == ("/usr/bin/chromium", 1)


def test_it_refuses_no_browser_checks_at_all(capsys: pytest.CaptureFixture[str]) -> None:
    env = {f"TRAXO_AGENT_{key}": value for key, value in REQUIRED.items()}
    with pytest.raises(SystemExit):
        parse_settings(["--max-browser-checks", "0"], env=env)
    assert "--max-browser-checks must be at least 1, got 0" in capsys.readouterr().err
