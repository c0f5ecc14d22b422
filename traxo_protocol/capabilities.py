"""Which capability an agent must announce to be given monitors of each check type.

The agent announces a type's capability when it can run that type on its host; the control plane
assigns a monitor only to agents that announced its type's capability. One map, read by both.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["CAPABILITY_FOR_TYPE", "KNOWN_CAPABILITIES"]

# Monitor type (as the API spells it) -> capability name on the wire.
CAPABILITY_FOR_TYPE: Final[Mapping[str, str]] = MappingProxyType(
    {
        "HTTP": "http",
        "TCP": "tcp",
        "PING": "icmp",
        "DNS": "dns",
        "SSL": "ssl",
        "BROWSER": "browser",
    }
)

KNOWN_CAPABILITIES: Final[frozenset[str]] = frozenset(CAPABILITY_FOR_TYPE.values())
