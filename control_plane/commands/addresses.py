"""Where the serving commands listen: ports checked before anything is created, the public URL derived."""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

import click

from control_plane.settings import Settings


@dataclass(frozen=True, slots=True)
class Listener:
    """One port a command is about to serve, and the flag that picks another."""

    what: str
    host: str
    port: int
    flag: str


def require_free(listeners: list[Listener]) -> None:
    """Fail with one line naming the port and its flag when something else already holds it.

    Checked up front so that a taken port stops the command before it creates a key or a token
    (binding for real happens later; a port taken in between still fails there, as before)."""
    for listener in listeners:
        family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # The servers set SO_REUSEADDR too, so a port in TIME_WAIT after a restart counts as free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((listener.host, listener.port))
            except OSError as exc:
                reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc})"
                raise click.ClickException(
                    f"port {listener.port} ({listener.what}, {listener.host}) {reason}: "
                    f"choose another with {listener.flag} PORT"
                ) from exc


def with_public_url(settings: Settings, host: str, port: int) -> Settings:
    """Settings whose public URL is the served address, unless TRAXO_PUBLIC_URL set one."""
    if "public_url" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"public_url": f"http://{_reachable_host(host)}:{port}"})


def _reachable_host(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a name: it is what clients use
    if address.is_unspecified:  # 0.0.0.0 or :: listens everywhere; loopback is one place that answers
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return f"[{address}]" if address.version == 6 else str(address)
