"""TCP checks against a real listener and a refused port."""

from __future__ import annotations

from agent.checks.base import CheckSpec, ErrorKind, Status
from agent.checks.tcp import run


def spec(target: str, timeout_s: float = 2.0) -> CheckSpec:
    return CheckSpec(monitor_id="mon_tcp", type="TCP", target=target, interval_s=60, timeout_s=timeout_s)


async def test_it_connects(tcp_listener: int) -> None:
    result = await run(spec(f"tcp://127.0.0.1:{tcp_listener}"))
    assert result.status is Status.UP, result.error_message
    assert result.timings.tcp is not None and result.timings.dns is None
    assert result.details == {"address": "127.0.0.1"}


async def test_it_resolves_names_and_times_dns(tcp_listener: int) -> None:
    result = await run(spec(f"tcp://localhost:{tcp_listener}"))
    assert result.status is Status.UP or result.error_kind is ErrorKind.CONNECTION  # ::1 may be first
    assert result.timings.dns is not None


async def test_refused_port_is_down(refused_port: int) -> None:
    result = await run(spec(f"tcp://127.0.0.1:{refused_port}"))
    assert result.status is Status.DOWN and result.error_kind is ErrorKind.CONNECTION
    assert f"127.0.0.1:{refused_port}" in (result.error_message or "")
    assert (result.error_message or "").endswith(": Connection refused"), result.error_message


async def test_bad_target_is_reported() -> None:
    result = await run(spec("tcp://127.0.0.1"))
    assert result.status is Status.DOWN and result.error_kind is ErrorKind.INTERNAL
