"""How reads show alert channels' secrets (docs/alerts-channels.md): "..." and the last 4 characters
of the secret's part (nothing of a short one); a URL keeps its scheme, host and port.

One rule for the API, which masks on every read, and for `traxo apply`, which masks a file's
values the same way to compare them with what the API shows."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

MASK = "..."
WEBHOOK_SECRET_PREFIX = "whsec_"
_HOSTNAME = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$|^localhost$", re.IGNORECASE)


def is_host_name(host: str) -> bool:
    """A real host (a name with a dot, localhost, an address), not a token in the host's place."""
    if _HOSTNAME.match(host):
        return True
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])  # a zone index follows a %
    except ValueError:
        return False
    return True


def mask_tail(value: str, keep: str = "") -> str:
    """`keep`, "..." and the last 4 characters (the secret's part only; nothing of a short one)."""
    secret = value[len(keep) :] if keep and value.startswith(keep) else value
    return f"{keep}{MASK}{secret[-4:] if len(secret) >= 12 else ''}"


def mask_url(url: str) -> str:
    """Scheme, host and port kept; user info, path and query masked but their last 4."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return mask_tail(url)
    kept = f"{scheme}://"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        host, port = "", None
    if host and is_host_name(host) and not parts.username and not parts.password:
        kept += parts.netloc + "/"
        rest = rest[len(parts.netloc) :].lstrip("/")
    elif host and is_host_name(host):
        kept += (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "") + "/"
    return f"{kept}{MASK}{rest[-4:] if len(rest) >= 12 else ''}"
