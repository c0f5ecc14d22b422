"""Status page subscribers at the edge: the subscribe body (JSON, or an HTML form's fields), the
owners' list, and its serializer."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints, ValidationError, model_validator, with_config
from typing_extensions import TypedDict

from control_plane.api.errors import describe_validation_error
from control_plane.api.responses import CLOSED, Page, Timestamp, iso_at
from control_plane.api.schemas import (
    EMAIL_DOC_PATTERN,
    EMAIL_PATTERN,
    NoControlCharacters,
    RequestModel,
    documented,
    examples,
)
from control_plane.core.errors import InvalidInput
from control_plane.models.status_pages import PageSubscriber

MAX_COMPONENTS = 500

ComponentId = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class SubscribeRequest(RequestModel):
    """Also accepted as an HTML form (application/x-www-form-urlencoded: `email`, and `components`
    repeated, or comma-separated)."""

    model_config = examples({"email": "jane@example.com", "components": ["spc_abc123"]})

    email: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=3, max_length=320),
        NoControlCharacters,
        documented(format="email", pattern=EMAIL_DOC_PATTERN),
    ]
    components: Annotated[
        list[ComponentId] | None,
        Field(
            max_length=MAX_COMPONENTS,
            description="Component ids (spc_...) of this page to be told about; omit for the whole page",
        ),
    ] = None

    @model_validator(mode="after")
    def _email_format(self) -> SubscribeRequest:
        if not EMAIL_PATTERN.match(self.email):
            raise ValueError("email: must be a valid email address")
        return self


def parse_subscribe(data: Any) -> SubscribeRequest:
    """The body as a SubscribeRequest; InvalidInput naming the field and the rule."""
    try:
        return SubscribeRequest.model_validate(data)
    except ValidationError as exc:
        messages = list(dict.fromkeys(describe_validation_error(dict(e)) for e in exc.errors()))
        raise InvalidInput("; ".join(messages[:5]) or "Invalid request") from None


def form_fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """An HTML form's fields as the JSON body would have them (unknown ones kept, to be refused)."""
    data: dict[str, Any] = {}
    components: list[str] = []
    for name, value in pairs:
        if name == "components":
            components += [part.strip() for part in value.split(",") if part.strip()]
        else:
            data[name] = value
    if components:
        data["components"] = components
    return data


@with_config(CLOSED)
class SubscriberOut(TypedDict):
    id: str
    email: str
    components: Annotated[list[str], Field(description="Component ids; empty: the whole page")]
    confirmed: bool
    confirmedAt: Timestamp | None
    createdAt: Timestamp


class SubscriberPageResponse(Page[SubscriberOut]):
    pass


def subscriber_out(row: PageSubscriber) -> SubscriberOut:
    return {
        "id": row.id,
        "email": row.email,
        "components": list(row.component_ids or []),
        "confirmed": row.confirmed_at is not None,
        "confirmedAt": iso_at(row.confirmed_at) if row.confirmed_at is not None else None,
        "createdAt": iso_at(row.created_at),
    }
