"""Request dependencies: the database session, the calling principal, roles and rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.ai.ingest.committer import AiIngest
from control_plane.api.errors import ApiError
from control_plane.api.middleware import RESPONSE_HEADERS_KEY
from control_plane.api.ratelimit import RateLimiter
from control_plane.core.timefmt import Clock, utcnow
from control_plane.db import Database
from control_plane.domain.plans import limits_for
from control_plane.models import Role
from control_plane.services.accounts import OrgSnapshot, Principal, PrincipalCache, authenticate
from control_plane.services.dashboard import UptimeCache
from control_plane.settings import Settings


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the process built at start and every request shares."""

    settings: Settings
    db: Database
    rate_limiter: RateLimiter
    principals: PrincipalCache
    uptime: UptimeCache
    # "Now" for every write a request makes: the wall clock in a server, one that tests move.
    clock: Clock
    # LLM events' group commit (POST /api/ai/ingest, OTLP): its writer starts on the first event.
    ai_ingest: AiIngest

    @classmethod
    def build(cls, settings: Settings, db: Database | None = None, clock: Clock = utcnow) -> Runtime:
        db = db or Database(settings.database_url)
        return cls(
            settings=settings,
            db=db,
            rate_limiter=RateLimiter(settings.redis_url),
            principals=PrincipalCache(db.changes, timedelta(seconds=settings.auth_cache_seconds)),
            uptime=UptimeCache(db.changes),
            clock=clock,
            ai_ingest=AiIngest(db, settings, clock),
        )


# Dependencies are async even where they do not await: FastAPI runs sync ones in a thread pool.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.db.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_now(runtime: RuntimeDep) -> datetime:
    return runtime.clock()


# The request's "now", read once from the runtime's clock and handed to the services it calls.
NowDep = Annotated[datetime, Depends(get_now)]


async def spend_budget(
    request: Request, runtime: Runtime, key: str, per_minute: int, exceeded: str | None = None
) -> None:
    """Spend one of `key`'s `per_minute`: its X-RateLimit-* headers go out with the answer, and a
    spent budget is a 429 with Retry-After ("Rate limit exceeded: <exceeded>; retry in N s")."""
    await _spend(runtime, key, per_minute, exceeded, request.scope.get(RESPONSE_HEADERS_KEY))


async def _spend(
    runtime: Runtime,
    key: str,
    per_minute: int,
    exceeded: str | None,
    headers: list[tuple[bytes, bytes]] | None,
) -> None:
    decision = await runtime.rate_limiter.hit(key, per_minute)
    if headers is not None:
        headers.extend(decision.headers())
    if not decision.allowed:
        what = exceeded or f"{per_minute} requests per minute"
        raise ApiError(
            429,
            f"Rate limit exceeded: {what}; retry in {decision.retry_after} s",
            {"Retry-After": str(decision.retry_after)},
        )


async def spend_failed_authentication(request: Request, runtime: Runtime) -> None:
    """Count a failed authentication (API key or webhook secret) against the client address's budget;
    429 once it is spent. One budget per address, whichever secret it guesses."""
    client = request.client.host if request.client else None
    await spend_budget(
        request, runtime, failed_authentication_key(client), runtime.settings.failed_auth_per_minute
    )


def failed_authentication_key(client_host: str | None) -> str:
    return f"authfail:{client_host or 'unknown'}"


async def spend_failed_guess(runtime: Runtime, client_host: str | None) -> None:
    """A guessed routing secret that named nothing (the AI ingest's monitor id, an unknown one):
    spent from the address's failed-authentication budget, as a wrong key is, for what answers
    without a Request (the ingest's fast path). 429 with Retry-After once the budget is spent."""
    per_minute = runtime.settings.failed_auth_per_minute
    exceeded = f"{per_minute} failed authentications per minute"
    await _spend(runtime, failed_authentication_key(client_host), per_minute, exceeded, None)


_MISSING_KEY = "Missing API key: send 'Authorization: Bearer traxo_...'"
_BEARER_FORM = 'Authorization header must be "Bearer <API key>"'


def _authorization_problem(header: str | None) -> str:
    """Why a header that did not authenticate failed, as precisely as its shape tells."""
    value = (header or "").strip()
    if not value:
        return _MISSING_KEY
    scheme, separator, credentials = value.partition(" ")
    if scheme.lower() == "bearer":
        return "Invalid or revoked API key" if credentials.strip() else f"{_BEARER_FORM}: the key is missing"
    if not separator:
        # A bare key, as `curl -H "Authorization: traxo_..."` sends it.
        return (
            f"{_BEARER_FORM}: the Bearer scheme is missing" if scheme.startswith("traxo_") else _BEARER_FORM
        )
    return f"{_BEARER_FORM}: scheme {scheme[:20]!r} is not supported"


# Each role check is one flat dependency taking the Request: FastAPI's dependency solving costs
# more per level than the cached authentication itself (bench/README.md).
async def _authenticate(request: Request) -> Principal:
    runtime: Runtime = request.app.state.runtime
    header = request.headers.get("authorization")
    principal = None
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token.startswith("traxo_") and len(token) < 200:
            principal = await authenticate(
                runtime.db.engine,
                token,
                cache=runtime.principals,
                last_used_resolution=timedelta(seconds=runtime.settings.last_used_resolution_seconds),
                now=runtime.clock(),
            )
    if principal is None:
        await spend_failed_authentication(request, runtime)
        raise ApiError(401, _authorization_problem(header))
    plan_limits = limits_for(principal.org.plan if principal.org else None)
    budget_key = f"org:{principal.org.id}" if principal.org else f"user:{principal.user_id}"
    per_minute = max(1, round(plan_limits.requests_per_minute * runtime.settings.rate_limit_multiplier))
    await spend_budget(request, runtime, budget_key, per_minute)
    return principal


async def get_principal(request: Request) -> Principal:
    return await _authenticate(request)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_optional_principal(request: Request) -> Principal | None:
    """The caller when an Authorization header authenticates, else None (no header, or a key that
    does not: for routes that anyone may read and a key may read more of). A failed key still
    spends the address's budget, and a known one its organization's."""
    if request.headers.get("authorization") is None:
        return None
    try:
        return await _authenticate(request)
    except ApiError as exc:
        if exc.status == 401:
            return None
        raise


OptionalPrincipalDep = Annotated[Principal | None, Depends(get_optional_principal)]


async def require_writer(request: Request) -> Principal:
    """Any write: a VIEWER may only read."""
    principal = await _authenticate(request)
    if principal.role == Role.VIEWER:
        raise ApiError(403, "Your role VIEWER is read-only; ask an OWNER or ADMIN")
    return principal


WriterDep = Annotated[Principal, Depends(require_writer)]


@dataclass(frozen=True, slots=True)
class Member:
    """A principal that belongs to an organization."""

    principal: Principal
    org: OrgSnapshot
    role: Role

    @property
    def org_id(self) -> str:
        return self.org.id

    @property
    def user_id(self) -> str:
        return self.principal.user_id


def _member(principal: Principal) -> Member:
    if principal.org is None or principal.role is None:
        raise ApiError(404, "Organization not found: create one with POST /api/organization")
    return Member(principal, principal.org, principal.role)


async def require_member(request: Request) -> Member:
    return _member(await _authenticate(request))


MemberDep = Annotated[Member, Depends(require_member)]


async def require_org_writer(request: Request) -> Member:
    member = _member(await _authenticate(request))
    if member.role == Role.VIEWER:
        raise ApiError(403, "Your role VIEWER is read-only; ask an OWNER or ADMIN")
    return member


OrgWriterDep = Annotated[Member, Depends(require_org_writer)]


_KEY_REFUSED = "Missing, malformed, revoked or expired API key"
_BUDGET_SPENT = (
    "Rate limit exceeded: the organization's requests per minute (its plan's), or this address's "
    "budget for failed authentications"
)
_READ_ONLY = "Your role VIEWER is read-only"
_NO_ORGANIZATION = "You belong to no organization yet (create one with POST /api/organization)"

# What each authenticating dependency may answer, whatever the route then does: the OpenAPI
# document (openapi.py) lists these for every operation that depends on one, with the bearer scheme.
AUTH_ERRORS: dict[Callable[..., Any], dict[int, str]] = {
    get_principal: {401: _KEY_REFUSED, 429: _BUDGET_SPENT},
    require_writer: {401: _KEY_REFUSED, 403: _READ_ONLY, 429: _BUDGET_SPENT},
    require_member: {401: _KEY_REFUSED, 404: _NO_ORGANIZATION, 429: _BUDGET_SPENT},
    require_org_writer: {401: _KEY_REFUSED, 403: _READ_ONLY, 404: _NO_ORGANIZATION, 429: _BUDGET_SPENT},
}
