"""What a member of an organization may do: OWNER and ADMIN everything (but ownership), VIEWER read."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    VIEWER = "VIEWER"
