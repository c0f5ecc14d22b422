"""Shared agent fixtures: a fake control plane and a real local HTTP target on port 0 for its checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from agent_fake_control_plane import FakeControlPlane

from agent.settings import AgentSettings
from tests.checks.http_target import Target, serve_target


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serve_target() as target:
        yield target


@pytest.fixture
async def control_plane() -> AsyncIterator[FakeControlPlane]:
    fake = FakeControlPlane(token="good-token")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def agent_settings(tmp_path: Path, control_plane: FakeControlPlane) -> Callable[..., AgentSettings]:
    def make(**overrides: object) -> AgentSettings:
        values: dict[str, object] = dict(
            control_plane=f"127.0.0.1:{control_plane.port}",
            token="good-token",
            region="eu-test",
            name="agent-under-test",
            metrics_host="127.0.0.1",
            metrics_port=0,
            spool_path=tmp_path / "spool.sqlite3",
            shutdown_deadline_s=2.0,
            reconnect_min_s=0.05,
            reconnect_max_s=0.2,
        )
        values.update(overrides)
        return AgentSettings(**values)  # type: ignore[arg-type]

    return make
