"""TCP checks: can a connection to host:port be opened within the timeout? Times dns and connect."""

from __future__ import annotations

import asyncio
import socket
from time import perf_counter
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from agent.checks._net import os_error_reason
from agent.checks.base import CheckError, CheckResult, CheckSpec, ErrorKind, Status, Timings

__all__ = ["run"]


async def run(check: CheckSpec) -> CheckResult:
    timings = Timings()
    started = perf_counter()
    try:
        host, port = _parse_target(check.target)
        async with asyncio.timeout(check.timeout_s):
            addresses = await _resolve(host, port, timings)
            address = await _connect(addresses, timings)
    except TimeoutError:
        stage = "connecting" if timings.dns is not None or _is_ip(host) else "resolving"
        error = CheckError(ErrorKind.TIMEOUT, f"timed out after {check.timeout_s:g}s while {stage}")
        return _down(started, timings, error)
    except CheckError as error:
        return _down(started, timings, error)
    timings.total = (perf_counter() - started) * 1000
    return CheckResult(Status.UP, timings.total, timings=timings, details={"address": address})


def _parse_target(target: str) -> tuple[str, int]:
    parts = urlsplit(target if "://" in target else f"tcp://{target}")
    try:
        port = parts.port
    except ValueError as exc:
        raise CheckError(ErrorKind.INTERNAL, f"invalid port in target {target!r}") from exc
    if not parts.hostname or port is None:
        raise CheckError(ErrorKind.INTERNAL, f"target {target!r} is not tcp://host:port")
    return parts.hostname, port


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


async def _resolve(host: str, port: int, timings: Timings) -> list[tuple[int, tuple[str, int]]]:
    if _is_ip(host):
        return [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]
    started = perf_counter()
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CheckError(ErrorKind.DNS, f"could not resolve {host}: {exc.strerror}") from exc
    finally:
        timings.dns = (perf_counter() - started) * 1000
    return [(family, (str(addr[0]), int(addr[1]))) for family, _, _, _, addr in infos]


async def _connect(addresses: list[tuple[int, tuple[str, int]]], timings: Timings) -> str:
    """Tries each resolved address in turn; the first that accepts wins."""
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        started = perf_counter()
        try:
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            errors.append(f"{sockaddr[0]}:{sockaddr[1]}: {os_error_reason(exc)}")
            continue
        finally:
            timings.tcp = (perf_counter() - started) * 1000
            sock.close()
        return sockaddr[0]
    raise CheckError(ErrorKind.CONNECTION, "could not connect to " + "; ".join(errors))


def _down(started: float, timings: Timings, error: CheckError) -> CheckResult:
    timings.total = (perf_counter() - started) * 1000
    return CheckResult(
        Status.DOWN, timings.total, error_kind=error.kind, error_message=error.message, timings=timings
    )


if TYPE_CHECKING:  # mypy holds this module to the check module contract in agent/checks/base.py
    from agent.checks import tcp as _module
    from agent.checks.base import CheckModule

    _contract: CheckModule = _module
