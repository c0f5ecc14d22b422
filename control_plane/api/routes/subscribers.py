"""Status page subscribers: visitors subscribe by email (JSON or an HTML form), confirm by the
mailed link, unsubscribe by the link every mail carries (or RFC 8058's one-click POST); owners list
and delete their pages' subscribers."""

from __future__ import annotations

import html
import json
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from control_plane.api.deps import (
    MemberDep,
    NowDep,
    OrgWriterDep,
    Runtime,
    RuntimeDep,
    SessionDep,
    spend_budget,
)
from control_plane.api.errors import ApiError, status_of
from control_plane.api.openapi import errors, json_body
from control_plane.api.responses import (
    JsonResponse,
    MessageResponse,
    message_response,
    page_response,
    pagination,
)
from control_plane.api.routes.status_page_html import spend_public_read
from control_plane.api.subscriber_schemas import (
    SubscribeRequest,
    SubscriberPageResponse,
    form_fields,
    parse_subscribe,
    subscriber_out,
)
from control_plane.core.errors import DomainError, InvalidInput, NotFound
from control_plane.status_pages import notify, public, subscribers

router = APIRouter(tags=["status page subscribers"])

SUBSCRIBES_PER_ADDRESS = 5  # a minute, per client address
SUBSCRIBES_PER_PAGE = 30  # a minute, per page, whoever asks
MAX_BODY = 16_384
ACCEPTED = (
    "Thanks. Unless the address is subscribed already, a confirmation link is on its way to it; "
    f"it expires in {subscribers.CONFIRM_HOURS} hours"
)
_NO_PAGE = "No public status page has this slug"
_FORM = "application/x-www-form-urlencoded"
_HTML_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_PUBLIC_404 = (404, _NO_PAGE + " (private pages have no subscribers)")
_RATE = (429, "Too many subscriptions asked from this address, or for this page, this minute")
_TOKEN = Annotated[str, Query(max_length=200, description="The token of the mailed link")]


def _html(title: str, text: str, status_code: int = 200, *, form: str = "") -> Response:
    """A small page; `form` is markup of ours (already escaped), posted to this same path."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body><main><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p>{form}</main></body></html>"
    )
    return Response(body, status_code, _HTML_HEADERS, "text/html")


async def _spend(request: Request, runtime: Runtime, key: str, per_minute: int) -> None:
    await spend_budget(request, runtime, key, per_minute, "too many subscriptions this minute")


async def _link_budget_spent(request: Request, runtime: Runtime) -> Response | None:
    """A mailed link's visit spends one of the address's public reads; once they are spent, the
    429 as a small page (a person followed the link), with its Retry-After."""
    try:
        await spend_public_read(request, runtime)
    except ApiError as exc:
        page = _html("Too many requests", exc.message, exc.status)
        page.headers.update(exc.headers or {})
        return page
    return None


async def _body(request: Request, form: bool) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"Request body too large (limit {MAX_BODY} bytes)")
    if form:
        try:
            return form_fields(parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=600))
        except (UnicodeDecodeError, ValueError):
            raise InvalidInput("Request body is not a valid form") from None
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/json":
        raise InvalidInput(
            "Content-Type: must be application/json (or application/x-www-form-urlencoded for a form)"
        )
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("Request body is not valid JSON") from None


_SUBSCRIBE_BODY = json_body(SubscribeRequest, "The address, and the components (omit for the whole page)")
_SUBSCRIBE_BODY["requestBody"]["content"][_FORM] = {
    "schema": {
        "type": "object",
        "required": ["email"],
        "properties": {
            "email": {"type": "string"},
            "components": {"type": "string", "description": "Component ids, comma-separated or repeated"},
        },
    }
}


def _also_html(responses: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """An HTML form's post is answered with a small HTML page, errors included."""
    page = {"text/html": {"schema": {"type": "string"}}}
    return {status: {**spec, "content": dict(page)} for status, spec in responses.items()} | {
        202: {"description": "Accepted: a confirmation link is mailed", "content": dict(page)}
    }


@router.post(
    "/status/{slug}/subscribe",
    status_code=202,
    response_model=MessageResponse,
    responses=_also_html(errors(400, 413, _PUBLIC_404, _RATE)),
    openapi_extra={"security": [], **_SUBSCRIBE_BODY},
)
async def subscribe(
    slug: str, request: Request, session: SessionDep, runtime: RuntimeDep, now: NowDep
) -> Response:
    """Mails a confirmation link to the address (double opt-in); the same answer whether or not it
    is subscribed already. An HTML form's post is answered with a small HTML page."""
    form = request.headers.get("content-type", "").partition(";")[0].strip().lower() == _FORM
    try:
        client = request.client.host if request.client else "unknown"
        await _spend(request, runtime, f"subscribe:{client}", SUBSCRIBES_PER_ADDRESS)
        page = await public.page_by_slug(session, slug)
        if page is None or not page.is_public:
            raise NotFound(_NO_PAGE)
        await _spend(request, runtime, f"subscribe-page:{page.id}", SUBSCRIBES_PER_PAGE)
        body = parse_subscribe(await _body(request, form))
        confirmation = await subscribers.subscribe(session, page, body.email, body.components or [], now)
    except DomainError as exc:
        if form:
            return _html("Subscription not accepted", exc.message, status_of(exc))
        raise
    except ApiError as exc:
        if form:
            return Response(
                _html("Subscription not accepted", exc.message, exc.status).body,
                exc.status,
                _HTML_HEADERS | (exc.headers or {}),
                "text/html",
            )
        raise
    if confirmation is not None:
        await notify.send_confirmation(runtime.settings, confirmation, now)
    if form:
        return _html("Check your inbox", ACCEPTED, 202)
    return JsonResponse({"message": ACCEPTED}, status_code=202)


@router.get("/status/{slug}/subscribe/confirm", response_class=Response, include_in_schema=False)
async def confirm_subscription(
    slug: str, request: Request, runtime: RuntimeDep, session: SessionDep, now: NowDep, token: _TOKEN = ""
) -> Response:
    """The mailed confirmation link: makes the subscription active."""
    if (spent := await _link_budget_spent(request, runtime)) is not None:
        return spent
    try:
        page = await subscribers.confirm(session, slug, token, now)
    except NotFound as exc:
        return _html("Not found", exc.message, 404)
    except InvalidInput as exc:
        return _html("Subscription not confirmed", exc.message, 400)
    return _html("Subscription confirmed", f"You will be mailed {page.name}'s incidents and maintenance.")


@router.get("/status/{slug}/unsubscribe", response_class=Response, include_in_schema=False)
async def unsubscribe_link(
    slug: str, request: Request, runtime: RuntimeDep, session: SessionDep, token: _TOKEN = ""
) -> Response:
    """The link in every mail: a page whose one button posts to it. Following the link changes
    nothing, so a mail scanner that opens every link unsubscribes nobody."""
    if (spent := await _link_budget_spent(request, runtime)) is not None:
        return spent
    try:
        page = await subscribers.unsubscribe_target(session, slug, token)
    except NotFound as exc:
        return _html("Not found", exc.message, 404)
    except InvalidInput as exc:
        return _html("Not unsubscribed", exc.message, 400)
    action = f"?token={quote(token, safe='')}"
    return _html(
        "Unsubscribe",
        f"Stop mails about {page.name}?",
        form=(
            f'<form method="post" action="{html.escape(action)}">'
            '<button type="submit">Unsubscribe</button></form>'
        ),
    )


@router.post("/status/{slug}/unsubscribe", response_class=Response, include_in_schema=False)
async def unsubscribe_one_click(
    slug: str, request: Request, runtime: RuntimeDep, session: SessionDep, token: _TOKEN = ""
) -> Response:
    """RFC 8058's one-click unsubscribe (List-Unsubscribe-Post): a mail client posts to the link."""
    if (spent := await _link_budget_spent(request, runtime)) is not None:
        return spent
    return await _unsubscribe(session, slug, token)


async def _unsubscribe(session: SessionDep, slug: str, token: str) -> Response:
    try:
        page = await subscribers.unsubscribe(session, slug, token)
    except NotFound as exc:
        return _html("Not found", exc.message, 404)
    except InvalidInput as exc:
        return _html("Not unsubscribed", exc.message, 400)
    return _html("Unsubscribed", f"You will not be mailed about {page.name} again.")


@router.get(
    "/api/status-pages/{slug}/subscribers",
    response_model=SubscriberPageResponse,
    responses=errors((404, "Status page not found")),
)
async def list_subscribers(
    slug: str,
    member: MemberDep,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> JsonResponse:
    """The page's subscribers, newest first, confirmed or not, a page at a time."""
    rows, total = await subscribers.list_subscribers(session, member.org_id, slug, page, limit)
    return page_response([subscriber_out(row) for row in rows], pagination(page, limit, total))


@router.delete(
    "/api/status-pages/{slug}/subscribers/{subscriber_id}",
    response_model=MessageResponse,
    responses=errors((404, "Status page or subscriber not found")),
)
async def delete_subscriber(
    slug: str, subscriber_id: str, member: OrgWriterDep, session: SessionDep
) -> JsonResponse:
    """Ends a subscription: nothing more is mailed to it."""
    await subscribers.delete_subscriber(session, member.org_id, slug, subscriber_id)
    return message_response("Subscriber deleted successfully")
