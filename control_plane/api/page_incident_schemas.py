"""Incidents declared on a status page at the edge: the request bodies (validated here), the
response shapes the OpenAPI document states, and the serializers that fill them from
status_pages.declared's views."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator, with_config
from typing_extensions import TypedDict

from control_plane.api.incident_schemas import Message
from control_plane.api.maintenance_schemas import Title
from control_plane.api.responses import CLOSED, Data, Page, Timestamp, iso_at, one_of
from control_plane.api.schemas import RequestModel, documented, examples
from control_plane.core.timefmt import iso
from control_plane.models.status_pages import PageIncidentUpdate
from control_plane.status_pages.declared import IMPACTS, STATUSES, DeclaredIncident
from control_plane.status_pages.markdown import render_markdown

MAX_POSTMORTEM = 50_000
MAX_COMPONENTS = 500

# As an update's message: no control characters but line breaks and tabs (Markdown is prose).
_PROSE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_PROSE_DOC_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"


def _postmortem_text(value: str) -> str:
    if _PROSE_CONTROL.search(value):
        raise ValueError("must not contain control characters (line breaks and tabs are fine)")
    if not value.strip():
        raise ValueError("must not be blank (null clears it)")
    return value


# Not stripped: leading spaces are Markdown (an indented code block).
Postmortem = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_POSTMORTEM),
    AfterValidator(_postmortem_text),
    documented(pattern=_PROSE_DOC_PATTERN),
    Field(description="Markdown (CommonMark with tables), up to 50,000 characters; null clears it"),
]
Impact = Literal["none", "minor", "major", "critical"]
ComponentId = Annotated[str, StringConstraints(min_length=1, max_length=40)]
ComponentIds = Annotated[
    list[ComponentId],
    Field(
        max_length=MAX_COMPONENTS,
        json_schema_extra={"uniqueItems": True},
        description="Components (spc_...) of this page, each once; empty: the whole page",
    ),
]


def _distinct(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("must not name a component twice")
    return value


class PageIncidentCreate(RequestModel):
    model_config = examples(
        {
            "title": "Elevated API error rates",
            "impact": "major",
            "message": "We are investigating errors on the API.",
            "componentIds": [],
        }
    )

    title: Annotated[Title, Field(description="1-200 characters")]
    impact: Annotated[Impact, Field(description="How bad: none, minor, major or critical")]
    status: Annotated[
        Literal["investigating", "identified", "monitoring"],
        Field(description="Its status as declared (not resolved): investigating unless sent"),
    ] = "investigating"
    message: Annotated[Message, Field(description="The first update (1-5000 characters)")]
    componentIds: ComponentIds = []
    postmortem: Postmortem | None = None

    @field_validator("componentIds")
    @classmethod
    def _components(cls, value: list[str]) -> list[str]:
        return _distinct(value)


class PageIncidentUpdateCreate(RequestModel):
    model_config = examples({"status": "identified", "message": "A bad deploy; rolling back."})

    status: Annotated[
        Literal["investigating", "identified", "monitoring", "resolved"],
        Field(
            description="The incident's status from now on: resolved resolves it; any other status "
            "reopens a resolved incident"
        ),
    ]
    message: Annotated[Message, Field(description="What people should know (1-5000 characters)")]


# API field -> column.
_COLUMNS = {"title": "title", "impact": "impact", "componentIds": "component_ids", "postmortem": "postmortem"}


class PageIncidentEdit(RequestModel):
    model_config = examples(
        {"postmortem": "## What happened\n\nA deploy broke the API for 12 minutes."}, {"impact": "minor"}
    )
    nullable: ClassVar[frozenset[str]] = frozenset({"postmortem"})

    title: Title | None = None
    impact: Impact | None = None
    componentIds: ComponentIds | None = None
    postmortem: Postmortem | None = None

    @field_validator("componentIds")
    @classmethod
    def _components(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _distinct(value)

    def columns(self) -> dict[str, Any]:
        """The fields sent, as the columns they change."""
        return {_COLUMNS[name]: value for name, value in self.model_dump(exclude_unset=True).items()}


@with_config(CLOSED)
class PageIncidentComponentOut(TypedDict):
    id: str
    displayName: str


@with_config(CLOSED)
class PageIncidentUpdateOut(TypedDict):
    id: str
    status: Annotated[str, one_of(*STATUSES)]
    message: str
    createdAt: Timestamp


@with_config(CLOSED)
class PageIncidentOut(TypedDict):
    id: str
    pageId: str
    title: str
    impact: Annotated[str, one_of(*IMPACTS)]
    status: Annotated[str, one_of(*STATUSES), Field(description="Its latest update's")]
    componentIds: Annotated[list[str], Field(description="Empty: the whole page")]
    components: list[PageIncidentComponentOut]
    startedAt: Timestamp
    resolvedAt: Annotated[Timestamp | None, Field(description="null while open (and once reopened)")]
    createdAt: Timestamp
    updatedAt: Timestamp
    postmortem: Annotated[str | None, Field(description="Markdown, as written")]
    postmortemHtml: Annotated[str | None, Field(description="The post-mortem as sanitised HTML")]
    updates: Annotated[list[PageIncidentUpdateOut], Field(description="Newest first")]


class PageIncidentResponse(Data[PageIncidentOut]):
    pass


class PageIncidentPageResponse(Page[PageIncidentOut]):
    pass


class PageIncidentUpdateResponse(Data[PageIncidentUpdateOut]):
    pass


def update_out(update: PageIncidentUpdate) -> PageIncidentUpdateOut:
    return {
        "id": update.id,
        "status": update.status,
        "message": update.message,
        "createdAt": iso_at(update.created_at),
    }


def page_incident_out(view: DeclaredIncident) -> PageIncidentOut:
    incident = view.incident
    return {
        "id": incident.id,
        "pageId": incident.page_id,
        "title": incident.title,
        "impact": incident.impact,
        "status": incident.status,
        "componentIds": [component.id for component in view.components],
        "components": [{"id": c.id, "displayName": c.display_name} for c in view.components],
        "startedAt": iso_at(incident.started_at),
        "resolvedAt": iso(incident.resolved_at),
        "createdAt": iso_at(incident.created_at),
        "updatedAt": iso_at(incident.updated_at),
        "postmortem": incident.postmortem,
        "postmortemHtml": None if incident.postmortem is None else render_markdown(incident.postmortem),
        "updates": [update_out(update) for update in view.updates],
    }
