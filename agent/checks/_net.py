"""Address helpers shared by the PING, DNS and SSL checks: host[:port] parsing and timed name lookup."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time

from agent.checks.base import CheckError, ErrorKind

# RFC 6761 §6.4: name lookup APIs should answer NXDOMAIN for these at once, without asking a server.
_NEVER_RESOLVES = (".invalid", ".invalid.")


def os_error_reason(exc: OSError) -> str:
    """The system's words for a socket error ("Connection refused"), not asyncio's wrapper text
    ("Connect call failed ('127.0.0.1', 80)"), which repeats the address the caller already names."""
    if exc.errno:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    """Split `host`, `host:port`, `[v6addr]:port` or a bare IPv6 address into (host, port)."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":")
        return host, int(port_text) if port_text else default_port
    if is_ip_address(value):
        return value, default_port
    host, sep, port_text = value.rpartition(":")
    if not sep:
        return value, default_port
    return host, int(port_text)


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


async def resolve(host: str) -> tuple[list[str], float]:
    """Resolve host to its addresses (system resolver order) and the lookup time in ms.

    IP literals come back as they are, with a lookup time of 0.
    """
    if is_ip_address(host):
        return [host], 0.0
    if host.lower().endswith(_NEVER_RESOLVES) or host.lower() in ("invalid", "invalid."):
        raise CheckError(ErrorKind.DNS, f"cannot resolve {host!r}: names under .invalid never resolve")
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CheckError(ErrorKind.DNS, f"cannot resolve {host!r}: {exc.strerror}") from exc
    elapsed_ms = (time.perf_counter() - started) * 1000
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    return addresses, elapsed_ms
