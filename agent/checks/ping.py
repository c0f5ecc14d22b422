"""PING check: ICMP echo with icmplib, packet loss and round-trip times, and the `icmp` capability probe."""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import icmplib

from agent.checks._net import resolve
from agent.checks.base import CheckError, CheckResult, CheckSpec, ErrorKind, Status, Timings

__all__ = ["PingSettings", "available", "can_ping", "evaluate_loss", "ping_with", "run"]


# No slots: from_config reads the field defaults off the class.
@dataclass(frozen=True)
class PingSettings:
    count: int = 3
    interval_s: float = 0.5
    packet_timeout_s: float = 2.0
    loss_threshold_percent: float = 100.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PingSettings:
        # The API validated the bounds (docs/monitor-config.md); only defaults are filled in here.
        return cls(
            count=int(config.get("count", cls.count)),
            interval_s=float(config.get("interval", cls.interval_s)),
            packet_timeout_s=float(config.get("packetTimeout", cls.packet_timeout_s)),
            loss_threshold_percent=float(config.get("lossThresholdPercent", cls.loss_threshold_percent)),
        )


@functools.cache
def _icmp_mode() -> bool | None:
    """Which icmplib socket mode works here: True raw (root/CAP_NET_RAW), False datagram, None neither.

    Probed once by pinging loopback, since a socket that opens may still be unable to send
    (a container without NET_RAW, or a ping_group_range that excludes our group).
    """
    for privileged in (True, False):
        try:
            host = icmplib.ping("127.0.0.1", count=1, timeout=1, privileged=privileged)
        except icmplib.ICMPLibError:
            continue
        if host.is_alive:
            return privileged
    return None


def can_ping() -> bool:
    """Whether this agent can send ICMP echo at all: it then advertises the `icmp` capability."""
    return _icmp_mode() is not None


def available() -> bool:
    """The registry's capability hook (it runs this in a worker thread: the probe blocks)."""
    return can_ping()


async def run(check: CheckSpec) -> CheckResult:
    privileged = await asyncio.to_thread(_icmp_mode)
    if privileged is None:
        return CheckResult(
            status=Status.DOWN,
            response_time_ms=0.0,
            error_kind=ErrorKind.UNSUPPORTED,
            error_message="this agent cannot send ICMP: it needs root or CAP_NET_RAW, "
            "or its group within net.ipv4.ping_group_range",
        )
    return await ping_with(check, privileged=privileged)


async def ping_with(check: CheckSpec, *, privileged: bool) -> CheckResult:
    """Run the PING check with an explicit socket mode (run() picks the mode the probe found)."""
    settings = PingSettings.from_config(check.config)
    started = time.perf_counter()
    dns_ms: float | None = None
    try:
        async with asyncio.timeout(check.timeout_s):
            addresses, dns_ms = await resolve(check.target)
            host = await _echo(addresses[0], settings, privileged)
    except CheckError as exc:
        return _failure(exc.kind, exc.message, started, dns_ms)
    except TimeoutError:
        message = f"no result from {check.target} within the monitor timeout of {check.timeout_s:g} s"
        return _failure(ErrorKind.TIMEOUT, message, started, dns_ms)
    result = evaluate_loss(host, settings.loss_threshold_percent)
    result.timings.dns = dns_ms or None
    result.timings.total = (time.perf_counter() - started) * 1000
    if check.target != host.address:
        result.details["target"] = check.target
    return result


async def _echo(address: str, settings: PingSettings, privileged: bool) -> icmplib.Host:
    try:
        return await icmplib.async_ping(
            address,
            count=settings.count,
            interval=settings.interval_s,
            timeout=settings.packet_timeout_s,
            privileged=privileged,
        )
    except icmplib.SocketPermissionError as exc:
        raise CheckError(ErrorKind.UNSUPPORTED, f"not allowed to open an ICMP socket: {exc}") from exc
    except icmplib.ICMPLibError as exc:
        raise CheckError(ErrorKind.CONNECTION, f"cannot ping {address}: {exc}") from exc


def evaluate_loss(host: icmplib.Host, loss_threshold_percent: float) -> CheckResult:
    """An icmplib Host as a result: DOWN at or above the loss threshold, else UP (a warning on any loss)."""
    sent, received = host.packets_sent, host.packets_received
    # Nothing sent (every send failed) counts as total loss, not as a perfect score.
    loss_percent = 100.0 if sent == 0 else round((sent - received) / sent * 100, 2)
    details: dict[str, Any] = {
        "address": host.address,
        "packets_sent": sent,
        "packets_received": received,
        "packet_loss_percent": loss_percent,
        "rtt_min_ms": host.min_rtt if received else None,
        "rtt_avg_ms": host.avg_rtt if received else None,
        "rtt_max_ms": host.max_rtt if received else None,
        "rtt_jitter_ms": host.jitter if received > 1 else None,
    }
    lost = f"{sent - received} of {sent} packets lost ({loss_percent:g}%)"
    if received == 0:
        status, kind, message = Status.DOWN, ErrorKind.PACKET_LOSS, f"no reply from {host.address}: {lost}"
    elif loss_percent >= loss_threshold_percent:
        status, kind = Status.DOWN, ErrorKind.PACKET_LOSS
        message = f"{host.address}: {lost}, at or above the threshold of {loss_threshold_percent:g}%"
    elif loss_percent > 0:
        # A warning, not an outage: the incident engine sees UP with a packet_loss kind.
        status, kind, message = Status.UP, ErrorKind.PACKET_LOSS, f"{host.address}: {lost}"
    else:
        status, kind, message = Status.UP, None, None
    return CheckResult(
        status=status,
        response_time_ms=host.avg_rtt if received else 0.0,
        error_kind=kind,
        error_message=message,
        details=details,
    )


def _failure(kind: ErrorKind, message: str, started: float, dns_ms: float | None) -> CheckResult:
    elapsed_ms = (time.perf_counter() - started) * 1000
    return CheckResult(
        status=Status.DOWN,
        response_time_ms=elapsed_ms,
        error_kind=kind,
        error_message=message,
        timings=Timings(dns=dns_ms or None, total=elapsed_ms),
    )


if TYPE_CHECKING:  # mypy holds this module to the check module contract in agent/checks/base.py
    from agent.checks import ping as _module
    from agent.checks.base import AvailabilityHook, CheckModule

    _contract: CheckModule = _module
    _available: AvailabilityHook = _module
