"""The status page as HTML: /status/{slug}, and / on a page's verified custom domain."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from control_plane.api.deps import NowDep, Runtime, RuntimeDep, SessionDep, spend_budget
from control_plane.api.public_answers import SHARED
from control_plane.api.ratelimit import PUBLIC_READS_EXCEEDED, public_read_key, public_reads_per_minute
from control_plane.status_pages import public
from control_plane.web.render import RenderedPage, render_not_found, render_page

router = APIRouter(tags=["status page html"], include_in_schema=False)

# Short: a visitor reloading during an incident sees its updates within half a minute.
_CACHE_CONTROL = "public, max-age=30"


async def spend_public_read(request: Request, runtime: Runtime, *, of: str | None = None) -> None:
    """One of the client address's public reads (ratelimit.py), for every public route that reads
    the database: 429 with Retry-After once they are spent. Replayed answers never get here.
    `of` gives a resource its own budget per address: badges, which image proxies (GitHub's,
    shields.io) fetch for every organization's READMEs from a few addresses."""
    client = request.client.host if request.client else None
    per_minute = public_reads_per_minute(runtime.settings.rate_limit_multiplier)
    key = public_read_key(client) if of is None else f"{public_read_key(client)}:{of}"
    await spend_budget(request, runtime, key, per_minute, PUBLIC_READS_EXCEEDED)


@router.get("/status/{slug}")
async def status_page_html(
    slug: str, request: Request, session: SessionDep, runtime: RuntimeDep, now: NowDep
) -> Response:
    """The public page; a private or unknown one is the same HTML 404."""
    await spend_public_read(request, runtime)
    page = await public.page_by_slug(session, slug)
    if page is None or not page.is_public:
        return _html(render_not_found(), request, status_code=404)
    view = await public.PAGE_VIEWS.view(session, page, now, runtime.settings.status_page_cache_seconds)
    return _page_html(view, request, now)


@router.get("/")
async def custom_domain_root(
    request: Request, session: SessionDep, runtime: RuntimeDep, now: NowDep
) -> Response:
    """The page whose verified custom domain is this request's Host; any other host gets what /
    always answered (a JSON 404), so the API's own host is unchanged."""
    host = request.headers.get("host", "")
    if host:  # a look-up in the database: a public read
        await spend_public_read(request, runtime)
    page = await public.page_by_domain(session, host) if host else None
    if page is None:
        raise HTTPException(404)
    if not page.is_public:
        return _html(render_not_found(), request, status_code=404)
    view = await public.PAGE_VIEWS.view(session, page, now, runtime.settings.status_page_cache_seconds)
    return _page_html(view, request, now)


def _page_html(view: public.PageView, request: Request, now: datetime) -> Response:
    response = _html(render_page(view, now, _page_path(request, view.page.slug)), request)
    if response.status_code == 200:  # a public page: replayed for a few seconds (public_answers.py)
        response.headers[SHARED] = "1"
    return response


def _page_path(request: Request, slug: str) -> str:
    return f"{str(request.scope.get('root_path', '')).rstrip('/')}/status/{slug}"


def _html(rendered: RenderedPage, request: Request, status_code: int = 200) -> Response:
    headers = {
        "Content-Security-Policy": rendered.content_security_policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    }
    if status_code != 200:
        return Response(rendered.html, status_code, headers | {"Cache-Control": "no-cache"}, "text/html")
    body = rendered.body
    # A page's 4,500 bars repeat themselves: 400 kB of HTML is 7 kB gzipped, for 1.5 ms of CPU.
    # Each encoding is its own representation, with its own strong validator.
    gzipped = _accepts_gzip(request.headers.get("accept-encoding", ""))
    etag = f'{rendered.etag[:-1]}-gzip"' if gzipped else rendered.etag
    headers |= {"ETag": etag, "Cache-Control": _CACHE_CONTROL, "Vary": "Accept-Encoding"}
    if _matches(request.headers.get("if-none-match"), rendered.etag):
        return Response(status_code=304, headers=headers)
    if gzipped:
        body = rendered.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, 200, headers, "text/html")


def _accepts_gzip(accept_encoding: str) -> bool:
    for coding in accept_encoding.lower().split(","):
        name, _, params = coding.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match compares weakly (RFC 9110 13.1.2): W/ is ignored, * matches, and either
    encoding's tag names the same page."""
    if not if_none_match:
        return False
    candidates = {
        candidate.strip().removeprefix("W/").replace('-gzip"', '"') for candidate in if_none_match.split(",")
    }
    return "*" in candidates or etag in candidates
