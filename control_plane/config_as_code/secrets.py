"""Alert channels' secrets, which the API masks on every read (docs/alerts-channels.md).

A masked value cannot be compared with the file's, so the file's value is masked by the API's own
rule (domain/secret_masks.py) and the masks are compared: "..." and the last 4 characters (a URL keeps its
scheme, host and port; a webhook secret its "whsec_"). A secret replaced by one with the same
mask (the same last four characters and host) is not seen as a change; `--replace-secrets`
sends every secret-bearing config anyway. Secrets are never printed.
"""

from __future__ import annotations

import re
from typing import Any

from control_plane.domain.secret_masks import WEBHOOK_SECRET_PREFIX, mask_tail, mask_url

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


def masked(channel_type: str, key: str, value: Any) -> Any:
    """`value` of config key `key` as the API's reads show it."""
    if channel_type == "APPRISE" and key == "urls" and isinstance(value, list):
        return [mask_url(url.strip()) if isinstance(url, str) else url for url in value]
    if not isinstance(value, str):
        return value
    if channel_type == "SLACK" and key == "webhookUrl":
        return mask_url(value.strip())
    if channel_type == "WEBHOOK" and key == "secret":
        return mask_tail(value, WEBHOOK_SECRET_PREFIX)
    if channel_type == "PAGERDUTY" and key == "routingKey":
        return mask_tail(value)
    return value
