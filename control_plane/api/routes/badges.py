"""Badges (/badge/{monitorId}/...: SVG and shields.io JSON) of monitors that opted in, and status
pages' RSS and Atom feeds. Public, cached a minute, with an ETag (If-None-Match answers 304); each
request spends one of the client address's public reads (status_page_html.spend_public_read), a
badge's of that badge alone.

An id that has no badge, or a slug that has no public page, spends the client address's budget for
failed authentications (a monitor id is a secret otherwise): 429 once it is spent."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import with_config
from typing_extensions import TypedDict

from control_plane.api.deps import NowDep, RuntimeDep, SessionDep, spend_failed_authentication
from control_plane.api.errors import ApiError
from control_plane.api.openapi import errors
from control_plane.api.responses import CLOSED
from control_plane.api.routes.status_page_html import spend_public_read
from control_plane.status_pages import badges, feeds

router = APIRouter(tags=["badges and feeds"])

MonitorId = Annotated[str, Path(alias="monitorId", description="The monitor's id (mon_...)")]
Days = Annotated[
    int,
    Query(
        ge=badges.MIN_DAYS, le=badges.MAX_DAYS, description="The span: the last 1-90 UTC days, today included"
    ),
]
Kind = Annotated[Literal["status", "uptime"], Query(description="The status badge's message or the uptime's")]

CACHE_CONTROL = "public, max-age=60"
# The SVG is an image: nothing in it may run or load, even opened on its own.
SVG_CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
_NO_BADGE = "No public badge for this monitor id (unknown, or its config.publicBadge is not true)"
_ERRORS_429 = (
    429,
    "Too many requests from this address: its public reads this minute, or badges or feeds that do not exist",
)


@with_config(CLOSED)
class ShieldsEndpoint(TypedDict):
    schemaVersion: Literal[1]
    label: str
    message: str
    color: str


def _svg_answer(description: str) -> dict[int | str, dict[str, object]]:
    return {
        200: {
            "description": f"{description}; cached a minute, with an ETag (If-None-Match answers 304)",
            "content": {"image/svg+xml": {"schema": {"type": "string"}}},
        }
    }


def cached(request: Request, body: bytes, media_type: str, headers: dict[str, str] | None = None) -> Response:
    """`body` with caching headers and its ETag; a 304 when the client holds it already."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    answer_headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag, **(headers or {})}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=answer_headers)
    return Response(content=body, media_type=media_type, headers=answer_headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


async def _not_found(request: Request, runtime: RuntimeDep, message: str) -> ApiError:
    await spend_failed_authentication(request, runtime)  # raises the 429 once the budget is spent
    return ApiError(404, message)


def _svg(request: Request, badge: badges.Badge) -> Response:
    headers = {"Content-Security-Policy": SVG_CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}
    return cached(request, badges.render_svg(badge).encode(), "image/svg+xml", headers)


@router.get(
    "/badge/{monitorId}/status.svg",
    response_class=Response,
    responses={
        **_svg_answer("The monitor's status: up, down, degraded, maintenance, paused or pending"),
        **errors((404, _NO_BADGE), _ERRORS_429),
    },
    openapi_extra={"security": []},
)
async def status_badge(
    request: Request, monitor_id: MonitorId, session: SessionDep, runtime: RuntimeDep, now: NowDep
) -> Response:
    """The monitor's status as a shields-style SVG, labelled with its name (`config.publicBadge` monitors)."""
    # Per badge: the image proxies fetching every organization's badges share a few addresses.
    await spend_public_read(request, runtime, of=monitor_id)
    badge = await badges.status_badge(session, monitor_id, now)
    if badge is None:
        raise await _not_found(request, runtime, _NO_BADGE)
    return _svg(request, badge)


@router.get(
    "/badge/{monitorId}/uptime.svg",
    response_class=Response,
    responses={
        **_svg_answer('The uptime over `days`, as "99.98%" ("pending" without data)'),
        **errors((404, _NO_BADGE), _ERRORS_429),
    },
    openapi_extra={"security": []},
)
async def uptime_badge(
    request: Request,
    monitor_id: MonitorId,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    days: Days = badges.DEFAULT_DAYS,
) -> Response:
    """The monitor's uptime (maintenance excluded) as a shields-style SVG (`config.publicBadge` monitors)."""
    # Per badge: the image proxies fetching every organization's badges share a few addresses.
    await spend_public_read(request, runtime, of=monitor_id)
    badge = await badges.uptime_badge(session, monitor_id, now, days)
    if badge is None:
        raise await _not_found(request, runtime, _NO_BADGE)
    return _svg(request, badge)


@router.get(
    "/badge/{monitorId}/shields.json",
    response_model=ShieldsEndpoint,
    responses=errors((404, _NO_BADGE), _ERRORS_429),
    openapi_extra={"security": []},
)
async def shields_endpoint(
    request: Request,
    monitor_id: MonitorId,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    kind: Kind = "status",
    days: Days = badges.DEFAULT_DAYS,
) -> Response:
    """The status or uptime badge as shields.io endpoint JSON, for
    `https://img.shields.io/endpoint?url=...` (`config.publicBadge` monitors); cached a minute, ETag."""
    # Per badge: the image proxies fetching every organization's badges share a few addresses.
    await spend_public_read(request, runtime, of=monitor_id)
    if kind == "status":
        badge = await badges.status_badge(session, monitor_id, now)
    else:
        badge = await badges.uptime_badge(session, monitor_id, now, days)
    if badge is None:
        raise await _not_found(request, runtime, _NO_BADGE)
    return cached(request, orjson.dumps(badges.shields_endpoint(badge)), "application/json")


Slug = Annotated[str, Path(description="The status page's slug")]
_NO_FEED = "Status page not found"
_FEED_TYPES = {"rss": "application/rss+xml", "atom": "application/atom+xml"}


def _feed_answer(kind: feeds.FeedFormat) -> dict[int | str, dict[str, object]]:
    return {
        200: {
            "description": f"The page's incidents of the last {feeds.FEED_DAYS} days (at most "
            f"{feeds.MAX_ENTRIES}), newest first, each with its timeline; cached a minute, with an ETag "
            "(If-None-Match answers 304)",
            "content": {_FEED_TYPES[kind]: {"schema": {"type": "string"}}},
        },
        **errors((404, "No public status page has this slug"), _ERRORS_429),
    }


async def _feed(
    request: Request, slug: str, session: SessionDep, runtime: RuntimeDep, now: NowDep, kind: feeds.FeedFormat
) -> Response:
    await spend_public_read(request, runtime)
    feed = await feeds.public_page_feed(session, slug, now)
    if feed is None:
        raise await _not_found(request, runtime, _NO_FEED)
    body = feeds.render_feed(feed, runtime.settings.public_url, kind)
    return cached(request, body, _FEED_TYPES[kind], {"X-Content-Type-Options": "nosniff"})


@router.get(
    "/status/{slug}/feed.rss",
    response_class=Response,
    responses=_feed_answer("rss"),
    openapi_extra={"security": []},
)
async def page_feed_rss(
    request: Request, slug: Slug, session: SessionDep, runtime: RuntimeDep, now: NowDep
) -> Response:
    """A public status page's incidents as RSS 2.0."""
    return await _feed(request, slug, session, runtime, now, "rss")


@router.get(
    "/status/{slug}/feed.atom",
    response_class=Response,
    responses=_feed_answer("atom"),
    openapi_extra={"security": []},
)
async def page_feed_atom(
    request: Request, slug: Slug, session: SessionDep, runtime: RuntimeDep, now: NowDep
) -> Response:
    """A public status page's incidents as Atom."""
    return await _feed(request, slug, session, runtime, now, "atom")
