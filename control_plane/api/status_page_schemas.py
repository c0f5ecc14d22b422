"""/api/status-pages: request bodies (validated at the edge), the response models the OpenAPI
document states, and the serializers that fill them."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    with_config,
)
from typing_extensions import TypedDict

from control_plane.api.responses import CLOSED, Data, Timestamp, iso_at, one_of
from control_plane.api.schemas import (
    NAME_DOC_PATTERN,
    SLUG_PATTERN,
    Name,
    NoControlCharacters,
    RequestModel,
    documented,
    examples,
)
from control_plane.core.timefmt import iso
from control_plane.domain.monitor_targets import http_url
from control_plane.status_pages.domains import DomainStatus, Instructions
from control_plane.status_pages.health import COMPONENT_STATUSES, OVERALL_STATUSES
from control_plane.status_pages.markdown import render_markdown
from control_plane.status_pages.pages import MAX_COMPONENTS, ComponentSpec, ComponentView, PageDetails
from control_plane.status_pages.public import PageView, PublicIncident, PublicMaintenance

MAX_CSS = 50_000
MAX_ORDER = 10_000
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

_SLUG = re.compile(SLUG_PATTERN)


def _slug_rule(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError("must be lowercase letters, digits and single hyphens (acme-status)")
    return value


PageSlug = Annotated[
    str,
    StringConstraints(min_length=1, max_length=50),
    AfterValidator(_slug_rule),
    documented(pattern=SLUG_PATTERN),
    Field(
        description="Lowercase letters, digits and single hyphens; at most 50; unique across organizations"
    ),
]
Description = Annotated[str, StringConstraints(max_length=500), NoControlCharacters]
GroupName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    NoControlCharacters,
    documented(pattern=NAME_DOC_PATTERN),
]
MonitorId = Annotated[str, StringConstraints(min_length=1, max_length=40)]
WebUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2048),
    NoControlCharacters,
    documented(format="uri"),
]
Css = Annotated[
    str,
    StringConstraints(max_length=MAX_CSS),
    Field(
        description="Inserted into the page's style element (escaped so that it cannot leave it). "
        "BUSINESS or ENTERPRISE plan"
    ),
]
Domain = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=253),
    documented(format="hostname"),
    Field(
        description="A host name such as status.example.com (stored lowercase); changing it resets "
        "its verification. Unique across every organization"
    ),
]


def valid_domain(value: str) -> str:
    """A DNS host name of two labels or more, lowercase, without a trailing dot; no IP address."""
    domain = value.lower().removesuffix(".")
    try:
        ipaddress.ip_address(domain.strip("[]"))
    except ValueError:
        pass
    else:
        raise ValueError("must be a host name, not an IP address")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a host name (labels of letters, digits and hyphens, separated by dots)"
        )
    if labels[-1].isdigit():
        raise ValueError(f"{value!r} is not a host name (its last label is all digits)")
    return domain


class ComponentIn(RequestModel):
    """A component in object form: its monitor, and optionally its name, place and group."""

    nullable: ClassVar[frozenset[str]] = frozenset({"group"})

    monitorId: MonitorId
    displayName: Annotated[Name | None, Field(description="Default: the monitor's name (or kept)")] = None
    order: Annotated[int | None, Field(ge=0, le=MAX_ORDER, description="Default: its place in the list")] = (
        None
    )
    group: Annotated[
        GroupName | None, Field(description="Components of one group are shown together; null: none")
    ] = None

    def spec(self) -> ComponentSpec:
        return ComponentSpec(
            monitor_id=self.monitorId,
            display_name=self.displayName,
            order=self.order,
            group=self.group,
            group_given="group" in self.model_fields_set,
        )


def _component_form(value: Any) -> Any:
    if isinstance(value, str):
        return {"monitorId": value}
    if isinstance(value, dict):
        return value
    raise ValueError("must be a monitor id or an object {monitorId, displayName?, order?, group?}")


_COMPONENT_SCHEMA = {
    "anyOf": [
        {"type": "string", "minLength": 1, "maxLength": 40, "description": "A monitor id"},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["monitorId"],
            "properties": {
                "monitorId": {"type": "string", "minLength": 1, "maxLength": 40},
                "displayName": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 100,
                    "pattern": NAME_DOC_PATTERN,
                    "description": "Default: the monitor's name (one already on the page keeps its own)",
                },
                "order": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_ORDER,
                    "description": "Default: its place",
                },
                "group": {
                    "anyOf": [
                        {"type": "string", "minLength": 1, "maxLength": 100, "pattern": NAME_DOC_PATTERN},
                        {"type": "null"},
                    ],
                    "description": "Omitted: kept as it was; null: no group",
                },
            },
        },
    ]
}
ComponentItem = Annotated[ComponentIn, BeforeValidator(_component_form), WithJsonSchema(_COMPONENT_SCHEMA)]
Components = Annotated[
    list[ComponentItem],
    Field(
        max_length=MAX_COMPONENTS,
        description="Monitors of the organization, as ids or as component objects (both forms may be "
        "mixed), in the order shown. On PUT: replaces the whole list",
    ),
]

# API field -> column.
_COLUMNS = {
    "name": "name",
    "slug": "slug",
    "description": "description",
    "customDomain": "custom_domain",
    "isPublic": "is_public",
    "hideBranding": "hide_branding",
    "customCss": "custom_css",
    "logoUrl": "logo_url",
    "faviconUrl": "favicon_url",
}


class _PageFields(RequestModel):
    nullable: ClassVar[frozenset[str]] = frozenset(
        {"description", "customDomain", "customCss", "logoUrl", "faviconUrl"}
    )

    description: Description | None = None
    customDomain: Domain | None = None
    isPublic: Annotated[bool | None, Field(description="false: only the organization's keys may read it")] = (
        None
    )
    hideBranding: Annotated[
        bool | None, Field(description='Hide "Powered by Traxo". BUSINESS or ENTERPRISE plan')
    ] = None
    customCss: Css | None = None
    logoUrl: WebUrl | None = None
    faviconUrl: WebUrl | None = None

    @field_validator("customDomain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return None if value is None else valid_domain(value)

    @field_validator("logoUrl", "faviconUrl")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    def columns(self) -> dict[str, Any]:
        """The fields sent, as the columns they change (monitors apart)."""
        sent = self.model_dump(exclude_unset=True, exclude={"monitors"})
        return {_COLUMNS[name]: value for name, value in sent.items()}

    def component_specs(self) -> list[ComponentSpec] | None:
        monitors: list[ComponentIn] | None = getattr(self, "monitors", None)
        return None if monitors is None else [component.spec() for component in monitors]


class StatusPageCreate(_PageFields):
    model_config = examples(
        {"name": "Acme Status", "slug": "acme-status", "monitors": ["cm1abc123", "cm2def456"]},
        {
            "name": "Acme Status",
            "slug": "acme-status",
            "description": "Our public services",
            "monitors": [
                {"monitorId": "cm1abc123", "displayName": "API", "group": "Backend"},
                {"monitorId": "cm2def456", "displayName": "Web App", "order": 5},
            ],
        },
    )

    name: Name
    slug: PageSlug
    monitors: Components


class StatusPageUpdate(_PageFields):
    model_config = examples(
        {"name": "Acme Status (Updated)"},
        {"monitors": [{"monitorId": "cm1abc123", "group": "Backend"}], "isPublic": False},
    )

    name: Name | None = None
    slug: PageSlug | None = None
    monitors: Components | None = None


@with_config(CLOSED)
class ComponentMonitorOut(TypedDict):
    id: str
    name: str
    url: str | None


@with_config(CLOSED)
class ListedComponentOut(TypedDict):
    """The reference's fields, plus its group."""

    id: str
    displayName: str
    order: int
    group: str | None
    monitor: ComponentMonitorOut


@with_config(CLOSED)
class WrittenComponentOut(TypedDict):
    """The reference's fields (as a create answers them), plus its group."""

    id: str
    monitorId: str
    displayName: str
    order: int
    group: str | None


class _PageFieldsOut(TypedDict):
    id: str
    name: str
    slug: str
    customDomain: str | None
    isPublic: bool
    orgId: str
    createdAt: Timestamp
    # Beyond the reference: what the page's writers set, read back.
    description: str | None
    hideBranding: bool
    customCss: str | None
    logoUrl: str | None
    faviconUrl: str | None
    domainVerified: Annotated[bool, Field(description="customDomain's TXT record was found")]
    updatedAt: Timestamp


@with_config(CLOSED)
class StatusPageOut(_PageFieldsOut):
    """A page as listed: the reference's fields, plus those under "Beyond the reference"."""

    components: list[ListedComponentOut]


@with_config(CLOSED)
class StatusPageWrittenOut(_PageFieldsOut):
    """A page as a create or an update answers it."""

    components: list[WrittenComponentOut]


class StatusPageListResponse(Data[list[StatusPageOut]]):
    pass


class StatusPageWrittenResponse(Data[StatusPageWrittenOut]):
    pass


def _page_fields(details: PageDetails) -> dict[str, Any]:
    page = details.page
    return {
        "id": page.id,
        "name": page.name,
        "slug": page.slug,
        "customDomain": page.custom_domain,
        "isPublic": page.is_public,
        "orgId": page.org_id,
        "createdAt": iso_at(page.created_at),
        "description": page.description,
        "hideBranding": page.hide_branding,
        "customCss": page.custom_css,
        "logoUrl": page.logo_url,
        "faviconUrl": page.favicon_url,
        "domainVerified": page.domain_verified_at is not None,
        "updatedAt": iso_at(page.updated_at),
    }


def _listed(view: ComponentView) -> ListedComponentOut:
    component = view.component
    return {
        "id": component.id,
        "displayName": component.display_name,
        "order": component.position,
        "group": component.group_name,
        "monitor": {"id": component.monitor_id, "name": view.monitor_name, "url": view.monitor_url},
    }


def _written(view: ComponentView) -> WrittenComponentOut:
    component = view.component
    return {
        "id": component.id,
        "monitorId": component.monitor_id,
        "displayName": component.display_name,
        "order": component.position,
        "group": component.group_name,
    }


def page_out(details: PageDetails) -> dict[str, Any]:
    return {**_page_fields(details), "components": [_listed(view) for view in details.components]}


def page_written_out(details: PageDetails) -> dict[str, Any]:
    return {**_page_fields(details), "components": [_written(view) for view in details.components]}


# The public view.


@with_config(CLOSED)
class PublicComponentOut(TypedDict):
    """The reference's name, status and uptime90d, plus its id and group."""

    id: str
    name: str
    group: str | None
    status: Annotated[str, one_of(*COMPONENT_STATUSES)]
    uptime90d: Annotated[
        float | None,
        Field(
            description="Percent of checks up in the last 90 UTC days, maintenance excluded; null: no checks"
        ),
    ]


@with_config(CLOSED)
class PublicTimelineEntryOut(TypedDict):
    status: str | None
    message: str
    createdAt: Timestamp


@with_config(CLOSED)
class PublicIncidentOut(TypedDict):
    id: str
    title: str
    status: Annotated[str, one_of("investigating", "identified", "monitoring", "resolved")]
    impact: Annotated[str, one_of("none", "minor", "major", "critical")]
    startedAt: Timestamp
    resolvedAt: Timestamp | None
    components: Annotated[list[str], Field(description="The affected components' names")]
    declared: Annotated[bool, Field(description="Declared by hand on the page; false: detected by Traxo")]
    updates: Annotated[list[PublicTimelineEntryOut], Field(description="Its timeline, newest first")]
    postmortem: Annotated[str | None, Field(description="Markdown, as written")]
    postmortemHtml: Annotated[
        str | None, Field(description="The post-mortem as sanitised HTML (what the page shows)")
    ]


@with_config(CLOSED)
class PublicMaintenanceOut(TypedDict):
    id: str
    title: str
    description: str | None
    startsAt: Annotated[
        Timestamp, Field(description="A recurring window's: its current or next occurrence's")
    ]
    endsAt: Timestamp
    components: list[str]


@with_config(CLOSED)
class PublicPageOut(TypedDict):
    """The reference's fields, plus description, faviconUrl, updatedAt, and the maintenance in
    progress or to come."""

    name: str
    slug: str
    description: str | None
    logoUrl: str | None
    faviconUrl: str | None
    overallStatus: Annotated[str, one_of(*OVERALL_STATUSES)]
    components: list[PublicComponentOut]
    activeIncidents: list[PublicIncidentOut]
    maintenance: list[PublicMaintenanceOut]
    updatedAt: Timestamp


class PublicPageResponse(Data[PublicPageOut]):
    pass


def _incident_out(incident: PublicIncident) -> PublicIncidentOut:
    return {
        "id": incident.id,
        "title": incident.title,
        "status": incident.status,
        "impact": incident.impact,
        "startedAt": iso_at(incident.started_at),
        "resolvedAt": iso(incident.resolved_at),
        "components": incident.components,
        "declared": incident.declared,
        "updates": [
            {"status": entry.status, "message": entry.message, "createdAt": iso_at(entry.at)}
            for entry in incident.updates
        ],
        "postmortem": incident.postmortem,
        "postmortemHtml": None if incident.postmortem is None else render_markdown(incident.postmortem),
    }


def _maintenance_out(maintenance: PublicMaintenance) -> PublicMaintenanceOut:
    return {
        "id": maintenance.id,
        "title": maintenance.title,
        "description": maintenance.description,
        "startsAt": iso_at(maintenance.starts_at),
        "endsAt": iso_at(maintenance.ends_at),
        "components": maintenance.components,
    }


def public_page_out(view: PageView) -> PublicPageOut:
    return {
        "name": view.page.name,
        "slug": view.page.slug,
        "description": view.page.description,
        "logoUrl": view.page.logo_url,
        "faviconUrl": view.page.favicon_url,
        "overallStatus": view.overall_status,
        "components": [
            {
                "id": component.id,
                "name": component.name,
                "group": component.group,
                "status": component.health.status,
                "uptime90d": component.health.uptime,
            }
            for component in view.components
        ],
        "activeIncidents": [_incident_out(incident) for incident in view.active_incidents],
        "maintenance": [_maintenance_out(maintenance) for maintenance in view.maintenance],
        "updatedAt": iso_at(view.page.updated_at),
    }


# Domain verification.


@with_config(CLOSED)
class InstructionsOut(TypedDict):
    type: Annotated[str, one_of("TXT")]
    host: Annotated[str, Field(description="_traxo-verification.<customDomain>")]
    value: str
    ttl: int


@with_config(CLOSED)
class VerificationOut(TypedDict):
    verificationToken: Annotated[
        str, Field(description="traxo-verify=<random>; the same until the domain changes")
    ]
    instructions: InstructionsOut


@with_config(CLOSED)
class DomainStatusOut(TypedDict):
    domainVerified: bool
    customDomain: str | None
    verifiedAt: Timestamp | None


class VerificationResponse(Data[VerificationOut]):
    pass


class DomainStatusResponse(Data[DomainStatusOut]):
    pass


def verification_out(instructions: Instructions) -> VerificationOut:
    return {
        "verificationToken": instructions.token,
        "instructions": {
            "type": "TXT",
            "host": instructions.host,
            "value": instructions.value,
            "ttl": instructions.ttl,
        },
    }


def domain_status_out(status: DomainStatus) -> DomainStatusOut:
    return {
        "domainVerified": status.verified,
        "customDomain": status.custom_domain,
        "verifiedAt": iso(status.verified_at),
    }
