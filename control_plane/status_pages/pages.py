"""Status pages' CRUD within one organization: what /api/status-pages calls.

Changes arrive as column values (the API maps its field names) and components as ComponentSpecs;
a broken rule is an InvalidInput naming the API field, a taken slug or domain a Conflict, a
premium field on a plan without it a Forbidden naming the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from control_plane.core.ids import new_id
from control_plane.domain.plans import limits_for
from control_plane.models import Monitor
from control_plane.models.status_pages import StatusPage, StatusPageComponent

NOT_FOUND = "Status page not found"
MAX_COMPONENTS = 100
# Columns only the BUSINESS and ENTERPRISE plans may set (to a value other than their default).
_PREMIUM = {"hide_branding": "hideBranding", "custom_css": "customCss"}


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """A component as a request gives it: None leaves a field as the component had it (a new
    component: the monitor's name, its place in the list, no group)."""

    monitor_id: str
    display_name: str | None = None
    order: int | None = None
    group: str | None = None
    group_given: bool = False  # group sent, even as null (which takes the component out of its group)


@dataclass(frozen=True, slots=True)
class ComponentView:
    component: StatusPageComponent
    monitor_name: str
    monitor_url: str | None


@dataclass(frozen=True, slots=True)
class PageDetails:
    page: StatusPage
    components: list[ComponentView]  # by order, then name


async def list_pages(session: AsyncSession, org_id: str) -> list[PageDetails]:
    pages = list(
        await session.scalars(
            select(StatusPage)
            .where(StatusPage.org_id == org_id)
            .order_by(StatusPage.created_at, StatusPage.id)
        )
    )
    components = await _components(session, [page.id for page in pages])
    return [PageDetails(page, components.get(page.id, [])) for page in pages]


async def find_page(session: AsyncSession, org_id: str, slug: str) -> StatusPage:
    """The organization's page with this slug; NotFound for another organization's too."""
    page = await session.scalar(
        select(StatusPage).where(StatusPage.slug == slug, StatusPage.org_id == org_id)
    )
    if page is None:
        raise NotFound(NOT_FOUND)
    return page


async def get_page(session: AsyncSession, org_id: str, slug: str) -> PageDetails:
    page = await find_page(session, org_id, slug)
    return PageDetails(page, (await _components(session, [page.id])).get(page.id, []))


async def create_page(
    session: AsyncSession,
    org_id: str,
    plan: str,
    values: Mapping[str, Any],
    components: Sequence[ComponentSpec],
    *,
    now: datetime,
) -> PageDetails:
    """A new page from `values` (name and slug required, the other columns optional)."""
    _check_plan(plan, values)
    page = StatusPage(id=new_id("sp"), org_id=org_id, created_at=now, updated_at=now, **values)
    await _check_unique(session, page)
    session.add(page)
    await _replace_components(session, page, components, existing=[])
    return await _commit(session, page)


async def update_page(
    session: AsyncSession,
    org_id: str,
    plan: str,
    slug: str,
    changes: Mapping[str, Any],
    components: Sequence[ComponentSpec] | None,
    *,
    now: datetime,
) -> PageDetails:
    """Apply the changed columns; `components` (when given) replace the page's list. A changed
    custom domain drops its verification."""
    page = await find_page(session, org_id, slug)
    _check_plan(plan, changes)
    domain_before = page.custom_domain
    for column, value in changes.items():
        setattr(page, column, value)
    if page.custom_domain != domain_before:
        page.domain_verification_token = None
        page.domain_verified_at = None
    await _check_unique(session, page)
    if components is not None:
        existing = list(
            await session.scalars(select(StatusPageComponent).where(StatusPageComponent.page_id == page.id))
        )
        await _replace_components(session, page, components, existing=existing)
    page.updated_at = now
    return await _commit(session, page)


async def delete_page(session: AsyncSession, org_id: str, slug: str) -> None:
    page = await find_page(session, org_id, slug)
    await session.delete(page)
    await session.commit()


def _check_plan(plan: str, values: Mapping[str, Any]) -> None:
    if limits_for(plan).premium_features:
        return
    for column, field in _PREMIUM.items():
        if values.get(column):
            raise Forbidden(f"{field}: needs the BUSINESS or ENTERPRISE plan; yours is {plan}")


async def _check_unique(session: AsyncSession, page: StatusPage) -> None:
    """Conflict when another page (of any organization) has the slug or the custom domain."""
    with session.no_autoflush:
        taken = await session.scalar(
            select(StatusPage.id).where(StatusPage.slug == page.slug, StatusPage.id != page.id)
        )
        if taken is not None:
            raise Conflict(f"slug: {page.slug!r} is already taken")
        if page.custom_domain is not None:
            taken = await session.scalar(
                select(StatusPage.id).where(
                    StatusPage.custom_domain == page.custom_domain, StatusPage.id != page.id
                )
            )
            if taken is not None:
                raise Conflict(f"customDomain: {page.custom_domain!r} is already used by another status page")


async def _commit(session: AsyncSession, page: StatusPage) -> PageDetails:
    try:
        await session.commit()
    except IntegrityError:  # a concurrent request took the slug or the domain after our check
        await session.rollback()
        raise Conflict("slug or customDomain: already taken by another status page") from None
    return PageDetails(page, (await _components(session, [page.id])).get(page.id, []))


async def _replace_components(
    session: AsyncSession,
    page: StatusPage,
    specs: Sequence[ComponentSpec],
    *,
    existing: list[StatusPageComponent],
) -> None:
    """The page's components become `specs`, in their order. A monitor already on the page keeps
    its component (and id: declared incidents name components by id)."""
    if len(specs) > MAX_COMPONENTS:
        raise InvalidInput(f"monitors: at most {MAX_COMPONENTS} components")
    seen: set[str] = set()
    for spec in specs:
        if spec.monitor_id in seen:
            raise InvalidInput(f"monitors: {spec.monitor_id!r} is listed more than once")
        seen.add(spec.monitor_id)
    with session.no_autoflush:
        names = {
            key: value
            for key, value in (
                await session.execute(
                    select(Monitor.id, Monitor.name).where(
                        Monitor.id.in_(sorted(seen)), Monitor.org_id == page.org_id
                    )
                )
            )
        }
    unknown = [spec.monitor_id for spec in specs if spec.monitor_id not in names]
    if unknown:
        listed = ", ".join(repr(monitor_id) for monitor_id in unknown[:10])
        raise InvalidInput(f"monitors: no monitor {listed} in this organization")
    kept = {component.monitor_id: component for component in existing}
    dropped = [component.id for component in existing if component.monitor_id not in seen]
    if dropped:
        await session.execute(delete(StatusPageComponent).where(StatusPageComponent.id.in_(dropped)))
    for index, spec in enumerate(specs):
        component = kept.get(spec.monitor_id)
        if component is None:
            component = StatusPageComponent(
                id=new_id("spc"),
                page_id=page.id,
                monitor_id=spec.monitor_id,
                display_name=names[spec.monitor_id],
                group_name=None,
            )
            session.add(component)
        if spec.display_name is not None:
            component.display_name = spec.display_name
        component.position = index if spec.order is None else spec.order
        if spec.group_given:
            component.group_name = spec.group


async def _components(session: AsyncSession, page_ids: list[str]) -> dict[str, list[ComponentView]]:
    if not page_ids:
        return {}
    rows = await session.execute(
        select(StatusPageComponent, Monitor.name, Monitor.url)
        .join(Monitor, Monitor.id == StatusPageComponent.monitor_id)
        .where(StatusPageComponent.page_id.in_(page_ids))
        .order_by(StatusPageComponent.position, StatusPageComponent.display_name, StatusPageComponent.id)
    )
    found: dict[str, list[ComponentView]] = {}
    for component, name, url in rows:
        found.setdefault(component.page_id, []).append(ComponentView(component, name, url))
    return found
