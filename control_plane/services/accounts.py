"""Users, API keys and authentication by key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from control_plane.core import changes
from control_plane.core.changes import ChangeFeed
from control_plane.core.errors import Conflict, NotFound
from control_plane.core.ids import hash_secret, new_api_key, new_id
from control_plane.models import ApiKey, Membership, Organization, Role, User

AUTH_TOPIC = "auth"


@dataclass(frozen=True, slots=True)
class OrgSnapshot:
    id: str
    name: str
    slug: str
    plan: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's user, and their organization and role if they have one."""

    user_id: str
    key_id: str
    org: OrgSnapshot | None
    role: Role | None

    @property
    def org_id(self) -> str | None:
        return self.org.id if self.org else None


def mask_key(prefix: str, last4: str) -> str:
    return f"{prefix}...{last4}"


async def create_user(session: AsyncSession, *, email: str, name: str, now: datetime) -> tuple[User, str]:
    """Create a user and a first API key; returns the user and the key in clear (shown once)."""
    user = User(id=new_id("usr"), email=email.strip().lower(), name=name.strip())
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"A user with email {email!r} already exists") from exc
    _, raw_key = _new_key(session, user.id, "Default", now)
    await session.commit()
    return user, raw_key


def _new_key(session: AsyncSession, user_id: str, name: str, now: datetime) -> tuple[ApiKey, str]:
    raw_key = new_api_key()
    key = ApiKey(
        id=new_id("key"),
        user_id=user_id,
        name=name,
        key_hash=hash_secret(raw_key),
        prefix=raw_key[:8],
        last4=raw_key[-4:],
        created_at=now,
    )
    session.add(key)
    return key, raw_key


async def create_key(session: AsyncSession, user_id: str, name: str, *, now: datetime) -> tuple[ApiKey, str]:
    key, raw_key = _new_key(session, user_id, name, now)
    await session.commit()
    return key, raw_key


async def list_keys(session: AsyncSession, user_id: str) -> list[ApiKey]:
    rows = await session.scalars(
        select(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return list(rows)


async def revoke_key(session: AsyncSession, user_id: str, key_id: str, *, now: datetime) -> None:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise NotFound("API key not found")
    await changes.publish(session, AUTH_TOPIC)
    await session.commit()


_AUTH_SELECT = (
    select(
        ApiKey.id,
        ApiKey.user_id,
        ApiKey.last_used_at,
        ApiKey.expires_at,
        Membership.role,
        Organization.id,
        Organization.name,
        Organization.slug,
        Organization.plan,
        Organization.created_at,
    )
    .select_from(ApiKey)
    .outerjoin(Membership, Membership.user_id == ApiKey.user_id)
    .outerjoin(Organization, Organization.id == Membership.org_id)
)


class PrincipalCache:
    """Recently authenticated keys, so a request costs no database round trip.

    Every change that affects authentication (revoked key, membership, organization, plan) is
    published on the change feed under AUTH_TOPIC and empties the cache, in this replica at commit
    and in the others through LISTEN. While the feed may be missing changes the cache is bypassed.
    """

    def __init__(self, feed: ChangeFeed, ttl: timedelta, max_entries: int = 100_000) -> None:
        self._feed = feed
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[str, _CachedKey] = {}
        feed.subscribe(AUTH_TOPIC, lambda _payload: self.clear())
        feed.on_reset(self.clear)

    def get(self, key_hash: str, now: datetime) -> _CachedKey | None:
        entry = self._entries.get(key_hash)
        if entry is None or not self._feed.complete or now - entry.fetched_at > self._ttl:
            return None
        return entry

    def put(self, key_hash: str, entry: _CachedKey) -> None:
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key_hash] = entry

    def clear(self) -> None:
        self._entries.clear()


@dataclass(slots=True)
class _CachedKey:
    principal: Principal
    expires_at: datetime | None
    last_used_at: datetime | None
    fetched_at: datetime


async def authenticate(
    engine: AsyncEngine,
    raw_key: str,
    *,
    cache: PrincipalCache,
    last_used_resolution: timedelta,
    now: datetime,
) -> Principal | None:
    """Resolve a raw key to its principal; refresh lastUsed at most once per resolution."""
    key_hash = hash_secret(raw_key)
    entry = cache.get(key_hash, now)
    if entry is None:
        entry = await _load_key(engine, key_hash, now)
        if entry is None:
            return None
        cache.put(key_hash, entry)
    if entry.expires_at is not None and entry.expires_at <= now:
        return None
    if entry.last_used_at is None or now - entry.last_used_at >= last_used_resolution:
        entry.last_used_at = now
        async with engine.begin() as conn:
            await conn.execute(
                update(ApiKey).where(ApiKey.id == entry.principal.key_id).values(last_used_at=now)
            )
    return entry.principal


async def _load_key(engine: AsyncEngine, key_hash: str, now: datetime) -> _CachedKey | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(_AUTH_SELECT.where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))
        ).first()
    if row is None:
        return None
    (key_id, user_id, last_used_at, expires_at, role, org_id, name, slug, plan, org_created_at) = row
    org = OrgSnapshot(org_id, name, slug, plan, org_created_at) if org_id is not None else None
    principal = Principal(user_id=user_id, key_id=key_id, org=org, role=Role(role) if role else None)
    return _CachedKey(principal, expires_at, last_used_at, now)
