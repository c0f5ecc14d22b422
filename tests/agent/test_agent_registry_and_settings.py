"""The check registry's capabilities and lookups; settings from flags and TRAXO_AGENT_* env."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from agent.checks import load_registry
from agent.checks.base import CheckSpec, ErrorKind, Status
from agent.settings import parse_settings


async def test_builtin_types_are_capabilities() -> None:
    registry = load_registry()
    await registry.probe()
    assert {"http", "tcp"} <= set(registry.capabilities)
    assert registry.runner("http") is registry.runners["HTTP"]


async def test_modules_that_cannot_run_here_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run(check: CheckSpec) -> None:
        raise AssertionError("never called")

    unable = types.ModuleType("traxo_test_unable")
    unable.run = run  # type: ignore[attr-defined]
    unable.available = lambda: False  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "traxo_test_unable", unable)
    registry = load_registry(
        {
            "BROWSER": ("traxo_test_unable", "browser"),
            "PING": ("traxo_test_missing_module", "icmp"),
            "TCP": ("agent.checks.tcp", "tcp"),
        }
    )
    await registry.probe()
    assert registry.capabilities == ["tcp"]


async def test_a_module_without_run_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []

    async def aclose() -> None:
        closed.append("traxo_test_no_run")

    no_run = types.ModuleType("traxo_test_no_run")
    no_run.aclose = aclose  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "traxo_test_no_run", no_run)
    registry = load_registry({"DNS": ("traxo_test_no_run", "dns"), "TCP": ("agent.checks.tcp", "tcp")})
    await registry.probe()
    assert registry.capabilities == ["tcp"]
    # Still an imported module: it gets to release what it holds.
    await registry.aclose()
    assert closed == ["traxo_test_no_run"]


async def test_an_unsupported_type_is_a_down_result() -> None:
    registry = load_registry({})
    spec = CheckSpec(monitor_id="mon_b", type="BROWSER", target="https://x", interval_s=60, timeout_s=5)
    result = await registry.runner("BROWSER")(spec)
    assert result.status is Status.DOWN and result.error_kind is ErrorKind.UNSUPPORTED
    assert "BROWSER" in (result.error_message or "")


def test_settings_from_env_and_flags() -> None:
    env = {
        "TRAXO_AGENT_CONTROL_PLANE": "cp:50051",
        "TRAXO_AGENT_TOKEN": "t",
        "TRAXO_AGENT_REGION": "eu",
        "TRAXO_AGENT_METRICS_PORT": "9200",
        "TRAXO_AGENT_SPOOL": "/var/lib/traxo/spool.db",
    }
    settings = parse_settings(["--region", "us"], env=env)
    assert (settings.control_plane, settings.token, settings.region) == ("cp:50051", "t", "us")
    assert settings.metrics_port == 9200
    assert settings.assignments_path == Path("/var/lib/traxo/spool.assignments.pb")


def test_missing_settings_name_the_flag_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--region", "eu"], env={})
    assert "--control-plane (or TRAXO_AGENT_CONTROL_PLANE)" in capsys.readouterr().err
