"""PING check against loopback only: real ICMP echo to 127.0.0.1 and ::1, loss evaluation on icmplib Hosts."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
from pathlib import Path

import icmplib

from agent.checks import ping
from agent.checks.base import CheckSpec, ErrorKind, Status
from tests.tools import missing


def ping_check(target: str, timeout_s: float = 5.0, **config: object) -> CheckSpec:
    config = {"count": 2, "interval": 0.2, "packetTimeout": 1, **config}
    return CheckSpec(
        monitor_id="m-ping", type="PING", target=target, interval_s=60, timeout_s=timeout_s, config=config
    )


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_it_can_ping_as_root() -> None:
    # Tests run as root here and in CI, so the raw-socket path is the one probed first and found.
    assert ping.can_ping()
    assert ping._icmp_mode() is True


async def test_it_pings_ipv4_loopback() -> None:
    result = await ping.run(ping_check("127.0.0.1", count=3))

    assert result.status is Status.UP, result.error_message
    assert result.error_kind is None
    assert result.details["packets_sent"] == 3
    assert result.details["packets_received"] == 3
    assert result.details["packet_loss_percent"] == 0
    assert 0 <= result.details["rtt_min_ms"] <= result.details["rtt_avg_ms"] <= result.details["rtt_max_ms"]
    assert result.response_time_ms == result.details["rtt_avg_ms"]
    assert result.timings.total is not None and result.timings.dns is None


async def test_it_pings_ipv6_loopback() -> None:
    if not has_ipv6_loopback():
        missing("this host has no IPv6 loopback (::1)")
    result = await ping.run(ping_check("::1"))

    assert result.status is Status.UP, result.error_message
    assert result.details["address"] == "::1"
    assert result.details["packets_received"] == 2


async def test_it_resolves_a_host_name() -> None:
    # localhost resolves from /etc/hosts, so no query leaves the machine.
    result = await ping.run(ping_check("localhost", count=1))

    assert result.status is Status.UP, result.error_message
    assert result.details["address"] in ("127.0.0.1", "::1")
    assert result.details["target"] == "localhost"


async def test_it_reports_an_unresolvable_name() -> None:
    result = await ping.run(ping_check("no-such-host.invalid"))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.DNS
    assert result.error_message is not None and "no-such-host.invalid" in result.error_message


async def test_it_stops_at_the_monitor_timeout() -> None:
    # Three echoes 5 s apart cannot finish within 0.3 s; the monitor timeout bounds the run.
    result = await ping.run(ping_check("127.0.0.1", timeout_s=0.3, count=3, interval=5))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.TIMEOUT
    assert result.response_time_ms < 2000


# Runs as nobody in a private network namespace, where ping_group_range can allow ICMP datagram
# sockets without touching the host's setting. The child prints the check result as JSON.
_UNPRIVILEGED_PING = """
import asyncio, dataclasses, json
from agent.checks import ping
from tests.tools import missing
from agent.checks.base import CheckSpec
check = CheckSpec("m-ping", "PING", "127.0.0.1", 60, 5.0, config={"count": 2, "interval": 0.2})
result = asyncio.run(ping.run(check))
print(json.dumps({"mode": ping._icmp_mode(), **dataclasses.asdict(result)}, default=str))
"""


async def test_it_pings_unprivileged_where_ping_group_range_allows() -> None:
    if not (shutil.which("unshare") and shutil.which("setpriv")):
        missing("needs unshare and setpriv (apt-get install util-linux) to drop privileges in a namespace")
    setup = 'ip link set lo up && echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range && exec "$@"'
    process = await asyncio.create_subprocess_exec(
        "unshare",
        "--net",
        "sh",
        "-c",
        setup,
        "sh",
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        sys.executable,
        "-c",
        _UNPRIVILEGED_PING,
        cwd=Path(__file__).parents[2],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        missing(f"cannot run as nobody in a private network namespace here: {stderr.decode()[-300:]}")
    result = json.loads(stdout)

    assert result["mode"] is False  # the datagram (unprivileged) socket, not a raw one
    assert result["status"] == "UP", result["error_message"]
    assert result["details"]["packets_received"] == 2


def test_it_is_up_without_loss() -> None:
    result = ping.evaluate_loss(icmplib.Host("192.0.2.1", 3, [1.0, 2.0, 3.0]), 100)

    assert result.status is Status.UP
    assert result.error_kind is None
    assert result.details["rtt_min_ms"] == 1.0
    assert result.details["rtt_avg_ms"] == 2.0
    assert result.details["rtt_max_ms"] == 3.0


def test_it_warns_on_loss_below_the_threshold() -> None:
    result = ping.evaluate_loss(icmplib.Host("192.0.2.1", 4, [1.0, 2.0]), 100)

    assert result.status is Status.UP
    assert result.error_kind is ErrorKind.PACKET_LOSS
    assert result.details["packet_loss_percent"] == 50
    assert result.error_message == "192.0.2.1: 2 of 4 packets lost (50%)"


def test_it_is_down_at_the_threshold() -> None:
    result = ping.evaluate_loss(icmplib.Host("192.0.2.1", 4, [1.0, 2.0]), 50)

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.PACKET_LOSS
    assert result.error_message is not None and "threshold of 50%" in result.error_message


def test_it_is_down_when_nothing_answers() -> None:
    result = ping.evaluate_loss(icmplib.Host("192.0.2.1", 3, []), 100)

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.PACKET_LOSS
    assert result.details["packet_loss_percent"] == 100
    assert result.details["rtt_avg_ms"] is None
    assert result.error_message == "no reply from 192.0.2.1: 3 of 3 packets lost (100%)"


def test_it_counts_nothing_sent_as_total_loss() -> None:
    result = ping.evaluate_loss(icmplib.Host("192.0.2.1", 0, []), 100)

    assert result.status is Status.DOWN
    assert result.details["packet_loss_percent"] == 100
