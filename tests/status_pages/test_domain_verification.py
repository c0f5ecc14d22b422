"""POST/GET /api/status-pages/:slug/verify-domain against a real DNS server on loopback
(tests/checks/dns_server.py's, serving this file's zone): the reference's answers, the token kept
until the domain changes, the TXT record found, absent or holding another value, and a changed
domain losing its verification."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import httpx
import pytest

from control_plane.api.app import create_app
from control_plane.core.timefmt import iso, parse_iso
from control_plane.status_pages.domains import split_nameserver
from control_plane.status_pages.public import page_by_domain
from tests.checks.dns_server import LoopbackDnsServer
from tests.spec import assert_shape, example
from tests.status_pages.support import create_page

VERIFY = "/api/status-pages/acme-status/verify-domain"
DOMAIN = "status.example.test"
ZONE_TEXT = """
$ORIGIN example.test.
$TTL 300
@       SOA   ns1 hostmaster 2024010101 7200 3600 1209600 300
@       NS    ns1
ns1     A     192.0.2.53
status  A     192.0.2.80
_traxo-verification.other TXT "traxo-verify=someone-elses"
"""


def publish(zone: dns.zone.Zone, name: str, *strings: str) -> None:
    """A TXT record at `name` (absolute), its value given as one or more strings."""
    node = zone.find_node(dns.name.from_text(name), create=True)
    rdataset = node.find_rdataset(dns.rdataclass.IN, dns.rdatatype.TXT, create=True)
    text = " ".join(f'"{part}"' for part in strings)
    rdataset.add(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text), 300)


@pytest.fixture
async def dns_server() -> AsyncIterator[LoopbackDnsServer]:
    server = LoopbackDnsServer(dns.zone.from_text(ZONE_TEXT, relativize=False))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def dns_api(settings, runtime, dns_server) -> AsyncIterator[httpx.AsyncClient]:
    """The API with TRAXO_DNS_RESOLVER pointing at the loopback server."""
    looking_up = settings.model_copy(update={"dns_resolver": dns_server.address})
    app = create_app(looking_up, dataclasses.replace(runtime, settings=looking_up))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as client:
        yield client


async def start(api: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, object]:
    response = await api.post(VERIFY, headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()["data"]
    return data


async def test_it_hands_out_the_txt_record_as_the_reference(dns_api, world):
    await create_page(dns_api, world.alice, customDomain="Status.Example.Test")
    response = await dns_api.post(VERIFY, headers=world.adam.headers)
    assert response.status_code == 200, response.text
    assert_shape(response.json(), example("POST", "/api/status-pages/:slug/verify-domain"))
    data = response.json()["data"]
    token = data["verificationToken"]
    assert token.startswith("traxo-verify=") and len(token) > len("traxo-verify=") + 20
    assert data["instructions"] == {
        "type": "TXT",
        "host": f"_traxo-verification.{DOMAIN}",
        "value": token,
        "ttl": 300,
    }


async def test_the_token_is_kept_until_the_domain_changes(dns_api, world):
    await create_page(dns_api, world.alice, customDomain=DOMAIN)
    first = await start(dns_api, world.alice.headers)
    assert await start(dns_api, world.adam.headers) == first
    same = await dns_api.put(
        "/api/status-pages/acme-status",
        json={"customDomain": "STATUS.example.test"},
        headers=world.alice.headers,
    )
    assert same.status_code == 200
    assert await start(dns_api, world.alice.headers) == first
    await dns_api.put(
        "/api/status-pages/acme-status",
        json={"customDomain": "www.example.test"},
        headers=world.alice.headers,
    )
    moved = await start(dns_api, world.alice.headers)
    assert moved["verificationToken"] != first["verificationToken"]
    assert moved["instructions"]["host"] == "_traxo-verification.www.example.test"  # type: ignore[index]


async def test_it_needs_a_custom_domain(dns_api, world):
    await create_page(dns_api, world.alice)
    for method in ("POST", "GET"):
        response = await dns_api.request(method, VERIFY, headers=world.alice.headers)
        assert response.status_code == 400, method
        assert response.json()["error"].startswith("customDomain: the page has no custom domain")


async def test_it_is_not_verified_while_the_record_is_absent(dns_api, world, dns_server):
    await create_page(dns_api, world.alice, customDomain=DOMAIN)
    await start(dns_api, world.alice.headers)
    response = await dns_api.get(VERIFY, headers=world.vera.headers)  # any member may check
    assert response.status_code == 200, response.text
    assert_shape(response.json(), example("GET", "/api/status-pages/:slug/verify-domain", 1))
    assert response.json()["data"] == {"domainVerified": False, "customDomain": DOMAIN, "verifiedAt": None}
    assert dns_server.transports_for(f"_traxo-verification.{DOMAIN}.") == ["UDP"]  # NXDOMAIN


async def test_a_record_holding_another_value_does_not_verify(dns_api, world, dns_server):
    await create_page(dns_api, world.alice, customDomain=DOMAIN)
    await start(dns_api, world.alice.headers)
    publish(dns_server.zone, f"_traxo-verification.{DOMAIN}.", "traxo-verify=not-the-token")
    publish(dns_server.zone, f"_traxo-verification.{DOMAIN}.", "v=something else")
    response = await dns_api.get(VERIFY, headers=world.alice.headers)
    assert response.json()["data"]["domainVerified"] is False
    assert dns_server.transports_for(f"_traxo-verification.{DOMAIN}.") == ["UDP"]


async def test_the_published_token_verifies_the_domain(dns_api, world, dns_server, database, clock):
    await create_page(dns_api, world.alice, customDomain=DOMAIN)
    token = str((await start(dns_api, world.alice.headers))["verificationToken"])
    publish(dns_server.zone, f"_traxo-verification.{DOMAIN}.", "v=spf1 -all")
    publish(dns_server.zone, f"_traxo-verification.{DOMAIN}.", token[:10], token[10:])  # split strings
    response = await dns_api.get(VERIFY, headers=world.alice.headers)
    assert response.status_code == 200
    assert_shape(response.json(), example("GET", "/api/status-pages/:slug/verify-domain", 0))
    data = response.json()["data"]
    assert (data["domainVerified"], data["customDomain"]) == (True, DOMAIN)
    assert iso(parse_iso(data["verifiedAt"])) == data["verifiedAt"]
    assert abs((clock() - parse_iso(data["verifiedAt"])).total_seconds()) < 60  # the request's now
    # Verified stays verified: no look-up again, even once the record is gone.
    dns_server.zone.delete_node(dns.name.from_text(f"_traxo-verification.{DOMAIN}."))
    again = await dns_api.get(VERIFY, headers=world.alice.headers)
    assert again.json()["data"] == data
    assert len(dns_server.transports_for(f"_traxo-verification.{DOMAIN}.")) == 1
    listed = (await dns_api.get("/api/status-pages", headers=world.alice.headers)).json()["data"][0]
    assert listed["domainVerified"] is True
    async with database.session() as session:
        for host in ("status.example.test", "STATUS.Example.Test:443", "status.example.test."):
            found = await page_by_domain(session, host)
            assert found is not None and found.slug == "acme-status", host


async def test_changing_the_domain_resets_its_verification(dns_api, world, dns_server, database):
    await create_page(dns_api, world.alice, customDomain=DOMAIN)
    token = str((await start(dns_api, world.alice.headers))["verificationToken"])
    publish(dns_server.zone, f"_traxo-verification.{DOMAIN}.", token)
    assert (await dns_api.get(VERIFY, headers=world.alice.headers)).json()["data"]["domainVerified"] is True
    moved = await dns_api.put(
        "/api/status-pages/acme-status",
        json={"customDomain": "www.example.test"},
        headers=world.alice.headers,
    )
    assert moved.json()["data"]["domainVerified"] is False
    # The old token is no proof for the new domain: its record holds it, yet nothing is verified.
    publish(dns_server.zone, "_traxo-verification.www.example.test.", token)
    response = await dns_api.get(VERIFY, headers=world.alice.headers)
    assert response.json()["data"] == {
        "domainVerified": False,
        "customDomain": "www.example.test",
        "verifiedAt": None,
    }
    async with database.session() as session:
        assert await page_by_domain(session, DOMAIN) is None
        assert await page_by_domain(session, "www.example.test") is None  # not verified yet
    cleared = await dns_api.put(
        "/api/status-pages/acme-status", json={"customDomain": None}, headers=world.alice.headers
    )
    assert cleared.json()["data"]["domainVerified"] is False


async def test_checking_before_a_token_is_handed_out_looks_nothing_up(dns_api, world, dns_server):
    await create_page(dns_api, world.alice, customDomain="other.example.test")  # its record exists
    response = await dns_api.get(VERIFY, headers=world.alice.headers)
    assert response.json()["data"] == {
        "domainVerified": False,
        "customDomain": "other.example.test",
        "verifiedAt": None,
    }
    assert dns_server.queries == []


def test_the_resolver_setting_reads_host_and_port():
    assert split_nameserver("127.0.0.1") == ("127.0.0.1", 53)
    assert split_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert split_nameserver("[::1]:5353") == ("::1", 5353)
    assert split_nameserver("::1") == ("::1", 53)
