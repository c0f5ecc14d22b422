"""/api/status-pages: an organization's status pages (key), a page's public view (none when the
page is public), and its custom domain's verification."""

from __future__ import annotations

from fastapi import APIRouter, Request

from control_plane.api.deps import (
    MemberDep,
    NowDep,
    OptionalPrincipalDep,
    OrgWriterDep,
    RuntimeDep,
    SessionDep,
)
from control_plane.api.openapi import BEARER_SCHEME, errors
from control_plane.api.public_answers import SHARED
from control_plane.api.responses import JsonResponse, MessageResponse, data_response, message_response
from control_plane.api.routes.status_page_html import spend_public_read
from control_plane.api.status_page_schemas import (
    DomainStatusResponse,
    PublicPageResponse,
    StatusPageCreate,
    StatusPageListResponse,
    StatusPageUpdate,
    StatusPageWrittenResponse,
    VerificationResponse,
    domain_status_out,
    page_out,
    page_written_out,
    public_page_out,
    verification_out,
)
from control_plane.core.errors import NotFound
from control_plane.status_pages import domains, pages, public

router = APIRouter(prefix="/api/status-pages", tags=["status pages"])

_NOT_FOUND = (404, pages.NOT_FOUND)
_TAKEN = (409, "The slug, or the custom domain, is another status page's (of any organization)")
_PREMIUM = (403, "hideBranding or customCss on a plan below BUSINESS; or the role VIEWER")
_NO_DOMAIN = (400, "The page has no customDomain")
_PUBLIC_NOT_FOUND = (
    404,
    "No such page; or a private page read without a key of its organization (it answers as absent)",
)
_PUBLIC_BUDGET = (
    429,
    "Rate limit exceeded: a key's organization's requests per minute, failed keys, or (without a key) "
    "this address's public reads",
)


@router.get("", response_model=StatusPageListResponse)
async def list_status_pages(member: MemberDep, session: SessionDep) -> JsonResponse:
    """The organization's status pages, oldest first, with their components."""
    return data_response([page_out(details) for details in await pages.list_pages(session, member.org_id)])


@router.post(
    "", status_code=201, response_model=StatusPageWrittenResponse, responses=errors(_TAKEN, _PREMIUM)
)
async def create_status_page(
    body: StatusPageCreate, member: OrgWriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    """A new page; `monitors` (ids or component objects) become its components, in that order."""
    details = await pages.create_page(
        session, member.org_id, member.org.plan, body.columns(), body.component_specs() or [], now=now
    )
    return data_response(page_written_out(details), status_code=201)


@router.get(
    "/{slug}",
    response_model=PublicPageResponse,
    responses=errors(_PUBLIC_NOT_FOUND, _PUBLIC_BUDGET),
    openapi_extra={"security": [{}, {BEARER_SCHEME: []}]},
)
async def get_public_status_page(
    slug: str,
    request: Request,
    principal: OptionalPrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
) -> JsonResponse:
    """The page as visitors see it: overall status, components with status and 90-day uptime,
    active incidents with their timeline, maintenance in progress or to come. No key needed for a
    public page; a private one needs a key of its organization (docs: README, status pages)."""
    if principal is None:  # a key spends its organization's budget; a visitor, its address's
        await spend_public_read(request, runtime)
    page = await public.page_by_slug(session, slug)
    member_org = principal.org.id if principal is not None and principal.org is not None else None
    if page is None or (not page.is_public and page.org_id != member_org):
        raise NotFound(pages.NOT_FOUND)
    view = await public.PAGE_VIEWS.view(session, page, now, runtime.settings.status_page_cache_seconds)
    response = data_response(public_page_out(view))
    if page.is_public:  # every visitor's answer alike: replayed for a few seconds (public_answers.py)
        response.headers[SHARED] = "1"
    return response


@router.put(
    "/{slug}", response_model=StatusPageWrittenResponse, responses=errors(_NOT_FOUND, _TAKEN, _PREMIUM)
)
async def update_status_page(
    slug: str, body: StatusPageUpdate, member: OrgWriterDep, session: SessionDep, now: NowDep
) -> JsonResponse:
    """Changes the fields sent; `monitors` replaces the whole component list (a monitor already on
    the page keeps its component, its id and, unless given anew, its name and group)."""
    details = await pages.update_page(
        session, member.org_id, member.org.plan, slug, body.columns(), body.component_specs(), now=now
    )
    return data_response(page_written_out(details))


@router.delete("/{slug}", response_model=MessageResponse, responses=errors(_NOT_FOUND))
async def delete_status_page(slug: str, member: OrgWriterDep, session: SessionDep) -> JsonResponse:
    """Deletes the page, its components and its declared incidents."""
    await pages.delete_page(session, member.org_id, slug)
    return message_response("Status page deleted successfully")


@router.post(
    "/{slug}/verify-domain", response_model=VerificationResponse, responses=errors(_NO_DOMAIN, _NOT_FOUND)
)
async def start_domain_verification(slug: str, member: OrgWriterDep, session: SessionDep) -> JsonResponse:
    """The TXT record proving the custom domain is the organization's; the same token each time
    until the domain changes."""
    return data_response(verification_out(await domains.start_verification(session, member.org_id, slug)))


@router.get(
    "/{slug}/verify-domain", response_model=DomainStatusResponse, responses=errors(_NO_DOMAIN, _NOT_FOUND)
)
async def check_domain_verification(
    slug: str, member: MemberDep, session: SessionDep, runtime: RuntimeDep, now: NowDep
) -> JsonResponse:
    """Looks the TXT record up (TRAXO_DNS_RESOLVER, else the system's resolvers) and marks the
    domain verified when it holds the token."""
    status = await domains.check_verification(
        session, member.org_id, slug, nameserver=runtime.settings.dns_resolver, now=now
    )
    return data_response(domain_status_out(status))
