"""What a monitor's `url` may hold, per type (docs/monitor-config.md): hosts, host:port, URLs.

The rules raise ValueError without the field's name: pydantic validators (a config's resolver,
serverName, a browser step's url) and validate_target (the monitor's url) each add the path the
client wrote.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from control_plane.core.errors import InvalidInput

PASSIVE_TYPES = ("HEARTBEAT", "LLM")  # nothing to reach: the control plane receives their traffic
URL_TYPES = ("HTTP", "BROWSER")

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def host_name(host: str) -> str:
    """A DNS name or an IP address (IPv6 optionally in brackets)."""
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(candidate)
        return host
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{host!r} is not a valid host name or IP address")
    return host


def host_port(value: str, *, port_required: bool) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6addr]:port` or a bare IPv6 address, as the agent splits them."""
    port_text: str | None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{value!r} is not host:port")
        port_text = rest[1:] if rest else None
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:  # a bare name, or a bare IPv6 address
        host, port_text = value, None
    host_name(host)
    if not port_text:
        if port_required:
            raise ValueError(f"a port is required ({value!r})")
        return host, None
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be 1-65535 in {value!r}")
    return host, int(port_text)


def http_url(url: str) -> str:
    if len(url) > 2048:
        raise ValueError("must be at most 2048 characters")
    if any(ch.isspace() for ch in url):
        raise ValueError("must not contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad port or a broken [IPv6] literal
        raise ValueError(f"{url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    host_name(parts.hostname)
    if port == 0:
        raise ValueError("port must be 1-65535")
    return url


def validate_target(monitor_type: str, url: str | None) -> str | None:
    """Check the monitor's `url` for its type (InvalidInput naming `url`); passive types need none."""
    try:
        return _target(monitor_type, url)
    except ValueError as exc:
        raise InvalidInput(f"url: {exc}") from None


def _target(monitor_type: str, url: str | None) -> str | None:
    if monitor_type in PASSIVE_TYPES:
        return http_url(url) if url else None
    if not url:
        raise ValueError(f"required for a {monitor_type} monitor")
    if len(url) > 2048:
        raise ValueError("must be at most 2048 characters")
    if any(ch.isspace() for ch in url):
        raise ValueError("must not contain spaces")
    if monitor_type in URL_TYPES:
        return http_url(url)
    if monitor_type == "TCP":
        if not url.startswith("tcp://"):
            raise ValueError("a TCP monitor's url is tcp://host:port")
        host_port(url[len("tcp://") :], port_required=True)
        return url
    if monitor_type == "SSL":
        target = url
        if "://" in url:
            if not url.startswith("https://"):
                raise ValueError("an SSL monitor takes host[:port] or https://host[:port]")
            http_url(url)
            parts = urlsplit(url)
            if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
                raise ValueError("an SSL monitor takes host[:port] or https://host[:port], no path")
            target = parts.netloc
        host_port(target, port_required=False)
        return url
    # PING and DNS: a bare host / name.
    if "/" in url or (monitor_type == "DNS" and ":" in url):
        raise ValueError(f"a {monitor_type} monitor's url is a host name, not a URL")
    host_name(url)
    return url[1:-1] if url.startswith("[") and url.endswith("]") else url  # the agent resolves bare IPs
