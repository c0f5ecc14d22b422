"""Request bodies, validated once at the edge, and the serializers for responses."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from control_plane.models import ApiKey, Membership, Organization, User
from control_plane.services.accounts import OrgSnapshot, mask_key
from control_plane.timefmt import iso

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# C0 controls, DEL and C1 controls (U+0080-U+009F): no name or URL has a use for them, and in a
# name they break lines and logs or carry terminal escapes to whoever lists it.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def reject_control_characters(value: str) -> str:
    if _CONTROL_CHARACTER.search(value):
        raise ValueError("must not contain control characters")
    return value


# The one rule for names and URLs; leading and trailing whitespace is stripped before it applies.
NoControlCharacters = AfterValidator(reject_control_characters)

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoControlCharacters
]
Slug = Annotated[
    str,
    StringConstraints(min_length=2, max_length=50, pattern=SLUG_PATTERN),
    Field(description="lowercase letters, digits and single hyphens; 2-50 characters"),
]


class RequestModel(BaseModel):
    """Unknown fields are an error (a typo must not be silently ignored); types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)
    # Fields that may be sent as an explicit null; any other field sent as null is a 400.
    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _reject_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None and key in cls.model_fields and key not in cls.nullable:
                    raise ValueError(f"{key}: must not be null")
                where = _nul_character_in(value)
                if where is not None:
                    raise ValueError(f"{key}{where}: must not contain NUL characters")
        elif data is not None:
            raise ValueError("Request body must be a JSON object")
        return data


def nul_character_path(document: dict[str, Any]) -> str | None:
    """The field of a JSON object holding U+0000, as `event.aliases.0`, or None.

    For bodies that do not go through RequestModel (RevenueCat's webhook): every string that reaches
    PostgreSQL, stored payloads included, meets the same rule.
    """
    found = _nul_character_in(document)
    return None if found is None else found.removeprefix(".")


def _nul_character_in(value: Any, where: str = "") -> str | None:
    """The path to a string holding U+0000 (PostgreSQL cannot store one), or None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return f"{where}.{key!r}"
        found = _nul_character_in(item, f"{where}.{key}")
        if found is not None:
            return found
    return None


class OrganizationCreate(RequestModel):
    name: Name
    slug: Slug


class OrganizationUpdate(RequestModel):
    name: Name | None = None
    slug: Slug | None = None


class ApiKeyCreate(RequestModel):
    name: Name


class TeamInvite(RequestModel):
    email: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320), NoControlCharacters
    ]
    role: Literal["ADMIN", "VIEWER"]

    @model_validator(mode="after")
    def _email_format(self) -> TeamInvite:
        if not EMAIL_PATTERN.match(self.email):
            raise ValueError("email: must be a valid email address")
        return self


def organization_out(org: Organization | OrgSnapshot, *fields: str) -> dict[str, Any]:
    full = {
        "id": org.id,
        "name": org.name,
        "slug": org.slug,
        "plan": org.plan,
        "createdAt": iso(org.created_at),
    }
    return {name: full[name] for name in fields} if fields else full


def api_key_out(key: ApiKey, *, raw_key: str | None = None) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "key": raw_key or mask_key(key.prefix, key.last4),
        "lastUsed": iso(key.last_used_at),
        "createdAt": iso(key.created_at),
        "expiresAt": iso(key.expires_at),
    }


def member_out(membership: Membership, user: User) -> dict[str, Any]:
    return {
        "id": membership.id,
        "userId": user.id,
        "role": membership.role,
        "name": user.name,
        "email": user.email,
        "image": user.image,
        "joinedAt": iso(membership.joined_at),
    }
