"""Custom domains' verification: a token handed out for the page's domain, published by its owner
as a TXT record at _traxo-verification.<domain>, and looked up with dnspython.

The token is kept with the page, so asking again hands out the same one; changing the page's
custom domain (pages.update_page) drops it and any verification. A domain once verified stays so
until it changes: a later look-up failing (the record removed, DNS down) does not unverify it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.errors import InvalidInput
from control_plane.status_pages.pages import find_page

log = logging.getLogger(__name__)

TOKEN_PREFIX = "traxo-verify="
RECORD_LABEL = "_traxo-verification"
RECORD_TTL = 300
LOOKUP_TIMEOUT_SECONDS = 2.0  # one try at one server
LOOKUP_LIFETIME_SECONDS = 5.0  # the whole look-up, retries included
_NO_DOMAIN = "customDomain: the page has no custom domain; set one with PUT /api/status-pages/:slug first"


@dataclass(frozen=True, slots=True)
class Instructions:
    token: str
    host: str  # where the TXT record goes
    value: str
    ttl: int


@dataclass(frozen=True, slots=True)
class DomainStatus:
    custom_domain: str | None
    verified_at: datetime | None

    @property
    def verified(self) -> bool:
        return self.verified_at is not None


def record_host(domain: str) -> str:
    return f"{RECORD_LABEL}.{domain}"


async def start_verification(session: AsyncSession, org_id: str, slug: str) -> Instructions:
    """The TXT record to publish for the page's custom domain; the same token until the domain
    changes."""
    page = await find_page(session, org_id, slug)
    if page.custom_domain is None:
        raise InvalidInput(_NO_DOMAIN)
    if page.domain_verification_token is None:
        page.domain_verification_token = TOKEN_PREFIX + secrets.token_hex(16)
        await session.commit()
    token = page.domain_verification_token
    return Instructions(token=token, host=record_host(page.custom_domain), value=token, ttl=RECORD_TTL)


async def check_verification(
    session: AsyncSession, org_id: str, slug: str, *, nameserver: str | None, now: datetime
) -> DomainStatus:
    """Look the TXT record up (at `nameserver`, "host[:port]", else the system's resolvers) and
    mark the domain verified when it holds the token. No token handed out yet: not verified."""
    page = await find_page(session, org_id, slug)
    domain = page.custom_domain
    if domain is None:
        raise InvalidInput(_NO_DOMAIN)
    token = page.domain_verification_token
    if page.domain_verified_at is None and token is not None:
        if token in await txt_values(record_host(domain), nameserver):
            page.domain_verified_at = now
            await session.commit()
    return DomainStatus(custom_domain=domain, verified_at=page.domain_verified_at)


def _resolver(nameserver: str | None) -> dns.asyncresolver.Resolver:
    if nameserver is None:
        resolver = dns.asyncresolver.Resolver()
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        host, port = split_nameserver(nameserver)
        resolver.nameservers = [host]
        resolver.port = port
    resolver.timeout = LOOKUP_TIMEOUT_SECONDS
    resolver.lifetime = LOOKUP_LIFETIME_SECONDS
    return resolver


def split_nameserver(value: str) -> tuple[str, int]:
    """ "host", "host:port", "[v6]:port" or a bare IPv6 address -> (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port)
    return value, 53


async def txt_values(name: str, nameserver: str | None) -> set[str]:
    """The TXT strings at `name` (each record's strings joined, as publishers split long values);
    empty when the name does not exist, has no TXT record or the look-up fails."""
    try:
        resolver = _resolver(nameserver)
    except ValueError as exc:  # TRAXO_DNS_RESOLVER is not host[:port]
        log.warning("TRAXO_DNS_RESOLVER %r is not a DNS server address: %s", nameserver, exc)
        return set()
    try:
        answer = await resolver.resolve(dns.name.from_text(name), dns.rdatatype.TXT)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return set()
    except dns.exception.DNSException as exc:  # timeouts, SERVFAIL, no server answering
        log.info("TXT look-up of %s failed: %s", name, exc)
        return set()
    values: set[str] = set()
    for record in answer:
        strings: tuple[bytes, ...] = getattr(record, "strings", ())
        values.add(b"".join(strings).decode("utf-8", "replace").strip())
    return values
