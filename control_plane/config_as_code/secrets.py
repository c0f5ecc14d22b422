"""Alert channels' secrets, which the API masks on every read (docs/alerts-channels.md).

A masked value cannot be compared with the file's, so the file's value is masked by the API's
documented rule and the masks are compared: "..." and the last 4 characters (a URL keeps its
scheme, host and port; a webhook secret its "whsec_"). A secret replaced by one with the same
mask (the same last four characters and host) is not seen as a change; `--replace-secrets`
sends every secret-bearing config anyway. Secrets are never printed.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

_MASK = "..."
WEBHOOK_SECRET_PREFIX = "whsec_"
_HOSTNAME = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$|^localhost$", re.IGNORECASE)

# Per channel type, the config keys whose values reads mask (a list's every item for APPRISE).
SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "SLACK": ("webhookUrl",),
    "WEBHOOK": ("secret",),
    "PAGERDUTY": ("routingKey",),
    "APPRISE": ("urls",),
}


# Monitors' headers the API shows as they are, but which look like credentials: kept out of plans
# and exports.
_CREDENTIAL_HEADER = re.compile(r"authorization|cookie|token|secret|api-?key|password", re.IGNORECASE)


def is_credential_header(name: str) -> bool:
    return bool(_CREDENTIAL_HEADER.search(name))


def is_secret(channel_type: str, key: str) -> bool:
    return key in SECRET_KEYS.get(channel_type, ())


def _mask_tail(value: str, keep: str = "") -> str:
    secret = value[len(keep) :] if keep and value.startswith(keep) else value
    return f"{keep}{_MASK}{secret[-4:] if len(secret) >= 12 else ''}"


def _is_host_name(host: str) -> bool:
    if _HOSTNAME.match(host):
        return True
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _mask_url(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator:
        return _mask_tail(url)
    kept = f"{scheme}://"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        host, port = "", None
    if host and _is_host_name(host) and not parts.username and not parts.password:
        kept += parts.netloc + "/"
        rest = rest[len(parts.netloc) :].lstrip("/")
    elif host and _is_host_name(host):
        kept += (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "") + "/"
    return f"{kept}{_MASK}{rest[-4:] if len(rest) >= 12 else ''}"


def masked(channel_type: str, key: str, value: Any) -> Any:
    """`value` of config key `key` as the API's reads show it."""
    if channel_type == "APPRISE" and key == "urls" and isinstance(value, list):
        return [_mask_url(url.strip()) if isinstance(url, str) else url for url in value]
    if not isinstance(value, str):
        return value
    if channel_type == "SLACK" and key == "webhookUrl":
        return _mask_url(value.strip())
    if channel_type == "WEBHOOK" and key == "secret":
        return _mask_tail(value, WEBHOOK_SECRET_PREFIX)
    if channel_type == "PAGERDUTY" and key == "routingKey":
        return _mask_tail(value)
    return value
