"""Request bodies, validated once at the edge, and how their rules read in the OpenAPI document."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# C0 controls, DEL and C1 controls (U+0080-U+009F): no name or URL has a use for them, and in a
# name they break lines and logs or carry terminal escapes to whoever lists it.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# The document's patterns for what the server strips and then checks: no surrounding whitespace
# and no control character, in one regex. Where ECMA's \s and Python's differ (control characters,
# U+FEFF) the pattern is the stricter, so whatever matches is accepted.
_TEXT = r"[^\x00-\x1f\x7f-\x9f]"
_EDGE = r"[^\s\x00-\x1f\x7f-\x9f]"
NAME_DOC_PATTERN = rf"^{_EDGE}(?:{_TEXT}*{_EDGE})?$"
_EMAIL_PART = r"[^@\s\x00-\x1f\x7f-\x9f]+"
EMAIL_DOC_PATTERN = rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$"


def reject_control_characters(value: str) -> str:
    if _CONTROL_CHARACTER.search(value):
        raise ValueError("must not contain control characters")
    return value


@dataclass(frozen=True, slots=True, eq=False)  # eq=False: hashed by identity, as Annotated needs
class Documented:
    """Annotated metadata adding keywords to a field's JSON schema, for rules that a validator
    (not a pydantic constraint) enforces, so the document states them too."""

    keywords: dict[str, Any]

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(core_schema), **self.keywords}


def documented(**keywords: Any) -> Documented:
    return Documented(keywords)


# The one rule for names and URLs; leading and trailing whitespace is stripped before it applies.
NoControlCharacters = AfterValidator(reject_control_characters)

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    NoControlCharacters,
    documented(pattern=NAME_DOC_PATTERN),
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

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Optional fields are `X | None` in Python; in the document only those in `nullable` are."""
        json_schema = handler(core_schema)
        for name, field_schema in handler.resolve_ref_schema(json_schema).get("properties", {}).items():
            if name not in cls.nullable:
                drop_null(field_schema)
        return json_schema


def drop_null(field_schema: dict[str, Any]) -> None:
    """Remove the `null` alternative (and a null default) from a field's JSON schema, in place."""
    branches = field_schema.get("anyOf")
    if branches is None or {"type": "null"} not in branches:
        return
    kept = [branch for branch in branches if branch != {"type": "null"}]
    del field_schema["anyOf"]
    if len(kept) == 1:
        field_schema.update(kept[0])
    else:
        field_schema["anyOf"] = kept
    if "default" in field_schema and field_schema["default"] is None:
        del field_schema["default"]


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


def examples(*bodies: dict[str, Any]) -> ConfigDict:
    """A request model's examples, for the document's readers and its tests (schemathesis sends them)."""
    return ConfigDict(json_schema_extra={"examples": list(bodies)})


class OrganizationCreate(RequestModel):
    model_config = examples({"name": "Acme Inc", "slug": "acme-inc"})

    name: Name
    slug: Slug


class OrganizationUpdate(RequestModel):
    model_config = examples({"name": "Acme Corporation"})

    name: Name | None = None
    slug: Slug | None = None


class ApiKeyCreate(RequestModel):
    model_config = examples({"name": "CI/CD Pipeline"})

    name: Name


class TeamInvite(RequestModel):
    model_config = examples({"email": "bob@example.com", "role": "ADMIN"})

    email: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=3, max_length=320),
        NoControlCharacters,
        documented(format="email", pattern=EMAIL_DOC_PATTERN),
    ]
    role: Literal["ADMIN", "VIEWER"]

    @model_validator(mode="after")
    def _email_format(self) -> TeamInvite:
        if not EMAIL_PATTERN.match(self.email):
            raise ValueError("email: must be a valid email address")
        return self
